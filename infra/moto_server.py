"""moto for the local stack: `moto_server`'s application, served with keep-alive.

`moto_server` (moto 5.2) serves through werkzeug's development server, which closes the
connection after every response and starts a thread per connection, and its dispatcher finds a
request's service by listing moto's package directory and trying every service's URL patterns,
under one lock, on every request. Here the same application is served by waitress (connections
kept alive, a fixed pool of threads) and the dispatcher's answer is kept per host (it depends on
the host alone: the modules and patterns are fixed once imported). Under widget-chat's load (two
DynamoDB writes per question, on a machine where moto, Postgres and the functions share two
cores) the two writes' p50 went from 6.0 to 4.6 ms and moto's CPU down by a tenth (README, "Chat").

One difference: waitress drops request headers whose names hold an underscore, which moto's own
request handler kept (for S3 user metadata keys); nothing in ChatPad sends S3 user metadata.

Usage: moto_server.py -H HOST -p PORT
"""

import argparse
import functools

import waitress
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

# Long polls (SQS ReceiveMessage waits up to 20 s) each hold a thread: the local stack's pump,
# workers and tests stay far below this.
THREADS = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="localhost")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()

    DomainDispatcherApplication.get_backend_for_host = functools.lru_cache(maxsize=1024)(
        DomainDispatcherApplication.get_backend_for_host
    )
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # as moto_server: error responses carry the exception
    waitress.serve(app, host=args.host, port=args.port, threads=THREADS, ident="moto")


if __name__ == "__main__":
    main()
