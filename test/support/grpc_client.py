"""A standard Python grpcio client of Herald, with default channel options.

Run with the interpreter of the virtual environment that test/support/python-grpc.ts
makes, with `PYTHONPATH` holding the stubs grpcio-tools generated from proto/:

    python grpc_client.py feed TARGET TOKEN USER
    python grpc_client.py send TARGET TOKEN USER COUNT INTERVAL_S

`feed` opens `NotificationFeed/Feed` for USER and prints each event until the call
ends or the process is stopped. `send` calls `NotificationPublisher/Send` COUNT times,
the n-th at n * INTERVAL_S seconds after the first, with the text `n-<n>`. Both print
one JSON object per line: `notification`, `gap`, `sent`, `error`, `end`, `done`, and
`state` for each connectivity state the channel enters (a second `READY` is a
reconnection: the connection was lost, e.g. to a GOAWAY).

Nothing but the generated stub and `grpc.insecure_channel(TARGET)`: what a user of the
proto file writes first.
"""
import json
import sys
import threading
import time

import grpc

from herald.v1 import notifications_pb2, notifications_pb2_grpc

_print_lock = threading.Lock()


def emit(event):
    with _print_lock:
        print(json.dumps(event), flush=True)


def feed(channel, token, user):
    stub = notifications_pb2_grpc.NotificationFeedStub(channel)
    request = notifications_pb2.FeedRequest(user_name=user)
    try:
        for response in stub.Feed(request, metadata=[("authorization", "Bearer " + token)]):
            kind = response.WhichOneof("event")
            if kind == "notification":
                emit({"event": "notification", "id": response.notification.id, "text": response.notification.text})
            else:
                emit({"event": kind})
        emit({"event": "end", "code": "OK", "details": ""})
    except grpc.RpcError as error:
        emit({"event": "end", "code": error.code().name, "details": error.details()})


def send(channel, token, user, count, interval):
    stub = notifications_pb2_grpc.NotificationPublisherStub(channel)
    metadata = [("authorization", "Bearer " + token)]
    start = time.monotonic()
    for n in range(count):
        delay = start + n * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            response = stub.Send(notifications_pb2.SendRequest(to=user, text="n-%d" % n), metadata=metadata)
            emit({"event": "sent", "n": n, "id": response.id, "receivedUsers": response.received_users})
        except grpc.RpcError as error:
            emit({"event": "error", "n": n, "code": error.code().name, "details": error.details()})
    emit({"event": "done", "seconds": time.monotonic() - start})


def main():
    mode, target, token, user = sys.argv[1:5]
    channel = grpc.insecure_channel(target)
    channel.subscribe(lambda state: emit({"event": "state", "state": state.name}))
    if mode == "feed":
        feed(channel, token, user)
    elif mode == "send":
        send(channel, token, user, int(sys.argv[5]), float(sys.argv[6]))
    else:
        raise SystemExit("unknown mode " + mode)
    channel.close()


if __name__ == "__main__":
    main()
