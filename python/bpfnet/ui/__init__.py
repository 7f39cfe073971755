"""The monitor's live page and Prometheus endpoint, served by ``bpfnetctl ui``.

    srv = UiServer(sock, MonitorSource(pins))
    srv.serve_forever()

``static/`` holds everything the page needs (d3 included), so it works with
no network and no build step; the server serves those files, the flows as
JSON and /metrics, read-only.
"""
