#!/usr/bin/python3
"""Interop: an MDP/0.1 client written straight from ZeroMQ RFC 7, with no
project code, talks to the real primary-broker and primary-echo-worker.

Usage: interop_test.py BIN_DIR   (exit 0 on success, non-zero on failure)

Needs Debian's python3-zmq and python3-msgpack (run with /usr/bin/python3).
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq

MDPC01 = b"MDPC01"


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def wait_for_endpoints(path, broker, timeout=10.0):
    """Reads KEY=VALUE lines from the broker's endpoints file once written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker.poll() is not None:
            fail("broker exited early with code %d" % broker.returncode)
        if os.path.exists(path):
            with open(path) as f:
                pairs = dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)
            if "front" in pairs and "workers" in pairs:
                return pairs
        time.sleep(0.05)
    fail("broker wrote no endpoints file within %.0f s" % timeout)


def mdp_request(ctx, endpoint, service, body, timeout_ms):
    """One RFC 7 request over a fresh REQ socket: the REQ socket adds the
    empty delimiter, we send MDPC01, service, body. Returns the body frame
    of the reply, or None on timeout."""
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart([MDPC01, service, body])
        if not sock.poll(timeout_ms, zmq.POLLIN):
            return None
        frames = sock.recv_multipart()
    finally:
        sock.close()
    if len(frames) != 3 or frames[0] != MDPC01 or frames[1] != service:
        fail("malformed reply envelope: %r" % (frames[:3],))
    return frames[2]


def echo_until_served(ctx, front, deadline):
    """Retries (Lazy Pirate) until the echo worker, which may still be
    registering, answers; returns the decoded reply map."""
    body = msgpack.packb({"op": "echo", "payload": "hello from python", "rid": 42})
    last = None
    while time.monotonic() < deadline:
        raw = mdp_request(ctx, front, b"echo", body, 2000)
        if raw is not None:
            last = msgpack.unpackb(raw, raw=False)
            if last.get("ok") is True:
                return last
            if last.get("code") != "UNAVAILABLE":
                fail("echo answered an error: %r" % (last,))
        time.sleep(0.1)
    fail("no successful echo reply before the deadline; last reply %r" % (last,))


def check(ctx, front):
    deadline = time.monotonic() + 20
    reply = echo_until_served(ctx, front, deadline)
    if reply.get("payload") != "hello from python":
        fail("payload not echoed: %r" % (reply,))
    if reply.get("rid") != 42:
        fail("rid not echoed: %r" % (reply,))

    # MMI (RFC 8) from the same plain client.
    if mdp_request(ctx, front, b"mmi.service", b"echo", 2000) != b"200":
        fail("mmi.service echo is not 200")
    if mdp_request(ctx, front, b"mmi.service", b"nosuch", 2000) != b"404":
        fail("mmi.service nosuch is not 404")

    # A body that is not MessagePack gets an error reply, not silence.
    raw = mdp_request(ctx, front, b"echo", b"\xc1garbage", 2000)
    if raw is None:
        fail("no reply to a malformed body")
    bad = msgpack.unpackb(raw, raw=False)
    if bad.get("ok") is not False or bad.get("code") != "BAD_REQUEST":
        fail("malformed body not answered BAD_REQUEST: %r" % (bad,))


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


def main():
    if len(sys.argv) != 2:
        print("usage: interop_test.py BIN_DIR", file=sys.stderr)
        return 2
    bin_dir = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="pt-interop-")
    procs = []
    ctx = zmq.Context()
    try:
        ep_file = os.path.join(tmp, "ep")
        broker = subprocess.Popen([
            os.path.join(bin_dir, "primary-broker"), "--insecure",
            "--front", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*",
            "--workers-endpoint", "tcp://127.0.0.1:*", "--event-sink", "tcp://127.0.0.1:*",
            "--endpoints-file", ep_file, "--heartbeat-ms", "100",
            "--request-timeout-ms", "1000"])
        procs.append(broker)
        eps = wait_for_endpoints(ep_file, broker)
        worker = subprocess.Popen([
            os.path.join(bin_dir, "primary-echo-worker"),
            "--broker", eps["workers"], "--heartbeat-ms", "100"])
        procs.append(worker)
        check(ctx, eps["front"])
        if broker.poll() is not None:
            fail("broker died during the test")
    finally:
        for p in reversed(procs):
            stop(p)
        ctx.destroy(linger=0)
        shutil.rmtree(tmp, ignore_errors=True)
    print("interop OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
