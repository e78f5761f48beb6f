#!/usr/bin/python3
"""Plain Majordomo (MDP/0.1, ZeroMQ RFC 7) peers written from the RFC alone,
with no project code, against the real primary-broker.

The worker below speaks exactly RFC 7's worker protocol: a READY of four
frames, REQUEST and REPLY as `client-address | "" | body`, HEARTBEAT both
ways, DISCONNECT. It refuses any REQUEST of another shape (so a broker that
sent it its extended frames fails the test). The client speaks RFC 7's
client protocol over a DEALER. The one call that is not RFC 7 or RFC 8 is
the test's wait for its workers to register: it asks this broker's
`broker.control workers` for the count, since mmi.service says only "at
least one".

Cases:
  - several clients, several requests each in flight: every reply is the
    computed answer (a sum) to its own request;
  - the worker SIGKILLed while holding a request: its client gets the
    broker-made UNAVAILABLE error body, with its rid;
  - heartbeats both ways: an idle plain worker stays registered over many
    expiry periods and receives the broker's HEARTBEATs; once it stops
    heartbeating the broker drops it (mmi.service turns 404);
  - a plain worker and primary-echo-worker serve the same service at once:
    both get work and every answer reaches its own client.

Usage: plain_rfc7_test.py BIN_DIR            (exit 0 on success)
       plain_rfc7_test.py --worker ENDPOINT SERVICE NAME HEARTBEAT_MS [MUTE_AFTER_S]
         (the worker, started as a child process by the test)

Needs Debian's python3-zmq and python3-msgpack (run with /usr/bin/python3).
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import msgpack
import zmq

MDPC01 = b"MDPC01"
MDPW01 = b"MDPW01"
READY, REQUEST, REPLY, HEARTBEAT, DISCONNECT = b"\x01", b"\x02", b"\x03", b"\x04", b"\x05"
HEARTBEAT_MS = 300   # the broker's and the workers' in this test
LIVENESS = 3         # RFC 7's and the broker's default


def fail(message):
    print("FAIL: " + message, file=sys.stderr, flush=True)
    sys.exit(1)


# ---------------------------------------------------------------- the worker

def worker_main(endpoint, service, name, heartbeat_ms, mute_after_s):
    """An RFC 7 worker. Requests are MessagePack maps; op "sum" answers
    {ok, sum, worker, rid}, op "echo" {ok, payload, worker, rid}, op "sleep"
    sleeps `ms` first. Prints one line per event on stdout for the test:
    READY, GOT <rid>, HB-RECV, HB-SENT, MUTED, BAD <why>."""
    def say(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    ctx = zmq.Context()
    interval = heartbeat_ms / 1000.0
    muted_at = time.monotonic() + mute_after_s if mute_after_s > 0 else None
    while True:  # one connection per pass; DISCONNECT or a silent broker reconnects
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send_multipart([b"", MDPW01, READY, service.encode()])
        say("READY")
        liveness = LIVENESS
        next_heartbeat = time.monotonic() + interval
        reconnect = False
        while not reconnect:
            if sock.poll(int(interval * 1000), zmq.POLLIN):
                frames = sock.recv_multipart()
                liveness = LIVENESS
                if len(frames) < 3 or frames[0] != b"" or frames[1] != MDPW01:
                    say("BAD header %r" % (frames[:3],))
                    continue
                command = frames[2]
                if command == REQUEST:
                    # RFC 7: "" | MDPW01 | 0x02 | client address | "" | body
                    if len(frames) != 6 or frames[4] != b"":
                        say("BAD request of %d frames %r" % (len(frames), frames[3:-1]))
                        sys.exit(3)
                    client, body = frames[3], frames[5]
                    request = msgpack.unpackb(body, raw=False)
                    rid = request.get("rid")
                    say("GOT %r" % (rid,))
                    op = request.get("op")
                    if op == "sleep":
                        time.sleep(request.get("ms", 0) / 1000.0)
                        reply = {"ok": True, "slept_ms": request.get("ms", 0)}
                    elif op == "sum":
                        reply = {"ok": True, "sum": sum(request["numbers"])}
                    elif op == "echo":
                        reply = {"ok": True, "payload": request.get("payload")}
                    else:
                        reply = {"ok": False, "code": "UNKNOWN_OP", "message": "no such op"}
                    reply["worker"] = name
                    if rid is not None:
                        reply["rid"] = rid
                    sock.send_multipart([b"", MDPW01, REPLY, client, b"", msgpack.packb(reply)])
                elif command == HEARTBEAT:
                    say("HB-RECV")
                elif command == DISCONNECT:
                    reconnect = True
                else:
                    say("BAD command %r" % (command,))
            else:
                liveness -= 1
                if liveness == 0:
                    reconnect = True  # the broker is presumed dead
            now = time.monotonic()
            if muted_at is not None and now >= muted_at:
                if muted_at > 0:
                    say("MUTED")
                    muted_at = 0
                liveness = LIVENESS  # keep listening, send nothing
                continue
            if now >= next_heartbeat:
                sock.send_multipart([b"", MDPW01, HEARTBEAT])
                say("HB-SENT")
                next_heartbeat = now + interval
        sock.close()
        time.sleep(interval)


# ---------------------------------------------------------------- the test

class Worker:
    """A worker child process whose event lines are collected."""

    def __init__(self, endpoint, service, name, mute_after_s=0):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", endpoint, service, name,
             str(HEARTBEAT_MS), str(mute_after_s)],
            stdout=subprocess.PIPE, text=True)
        self.lines = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.strip())

    def count(self, prefix):
        with self.lock:
            return sum(1 for l in self.lines if l.startswith(prefix))

    def bad(self):
        with self.lock:
            return [l for l in self.lines if l.startswith("BAD")]

    def wait_line(self, prefix, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(prefix):
                return True
            time.sleep(0.01)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def wait_for_endpoints(path, broker, timeout=10.0):
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


class Client:
    """An RFC 7 client on a DEALER: sends "" | MDPC01 | service | body and
    reads "" | MDPC01 | service | body; several requests may be in flight."""

    def __init__(self, ctx, endpoint):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, service, request):
        self.sock.send_multipart([b"", MDPC01, service, msgpack.packb(request)])

    def recv(self, service, timeout_ms):
        """The decoded reply body, or None on timeout."""
        if not self.sock.poll(timeout_ms, zmq.POLLIN):
            return None
        frames = self.sock.recv_multipart()
        if len(frames) != 4 or frames[0] != b"" or frames[1] != MDPC01 or frames[2] != service:
            fail("malformed reply envelope: %r" % (frames[:3],))
        return msgpack.unpackb(frames[3], raw=False)

    def call(self, service, request, timeout_ms=3000):
        self.send(service, request)
        return self.recv(service, timeout_ms)

    def close(self):
        self.sock.close()


def mmi_service(ctx, front, service):
    """RFC 8's mmi.service answer ("200"/"404"), or None on timeout."""
    c = ctx.socket(zmq.DEALER)
    c.setsockopt(zmq.LINGER, 0)
    c.connect(front)
    try:
        c.send_multipart([b"", MDPC01, b"mmi.service", service])
        if not c.poll(2000, zmq.POLLIN):
            return None
        return c.recv_multipart()[3].decode()
    finally:
        c.close()


def worker_slots(ctx, front, service):
    """The broker's count of worker slots for `service` (its broker.control
    service, which a loopback peer may ask in insecure mode); None when it
    did not answer."""
    c = Client(ctx, front)
    try:
        r = c.call(b"broker.control", {"op": "workers"}, timeout_ms=2000)
    finally:
        c.close()
    if not r or r.get("ok") is not True:
        return None
    return r.get("services", {}).get(service.decode(), 0)


def wait_slots(ctx, front, service, n, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker_slots(ctx, front, service) == n:
            return True
        time.sleep(0.02)
    return False


def wait_mmi(ctx, front, service, answer, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if mmi_service(ctx, front, service) == answer:
            return True
        time.sleep(0.02)
    return False


def check_no_bad(workers):
    for w in workers:
        if w.bad():
            fail("a plain worker saw a frame RFC 7 does not allow: %r" % (w.bad(),))


def case_requests_and_replies_match(ctx, front, workers_ep, children):
    """Four clients, each 25 requests with 5 in flight, over two plain
    workers: each reply is the sum of its own request's numbers."""
    service = b"plain.sum"
    ws = [Worker(workers_ep, "plain.sum", "py-%d" % i) for i in range(2)]
    children.extend(ws)
    if not wait_slots(ctx, front, service, 2, 10):
        fail("the two plain workers never registered")
    errors = []
    answered_by = {}

    def run_client(index):
        c = Client(ctx, front)
        try:
            expected, sent, done = {}, 0, 0
            while done < 25:
                while sent < 25 and sent - done < 5:
                    rid = index * 1000 + sent
                    numbers = [rid, sent * 7, -index, 12345]
                    expected[rid] = sum(numbers)
                    c.send(service, {"op": "sum", "numbers": numbers, "rid": rid})
                    sent += 1
                r = c.recv(service, 5000)
                if r is None:
                    errors.append("client %d: no reply" % index)
                    return
                done += 1
                rid = r.get("rid")
                if r.get("ok") is not True or rid not in expected or r.get("sum") != expected.pop(rid):
                    errors.append("client %d: reply %r does not match a request of its own" % (index, r))
                    return
                answered_by[r.get("worker")] = answered_by.get(r.get("worker"), 0) + 1
        finally:
            c.close()

    threads = [threading.Thread(target=run_client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        fail(errors[0])
    if sum(answered_by.values()) != 100:
        fail("expected 100 answers, got %r" % (answered_by,))
    if len(answered_by) != 2:
        fail("only one plain worker got work: %r" % (answered_by,))
    check_no_bad(ws)
    print("  requests and replies match: %r" % (answered_by,))


def case_worker_killed_mid_request(ctx, front, workers_ep, children):
    service = b"plain.killed"
    w = Worker(workers_ep, "plain.killed", "py-victim")
    children.append(w)
    if not wait_mmi(ctx, front, service, "200", 10):
        fail("the plain worker never registered")
    c = Client(ctx, front)
    c.send(service, {"op": "sleep", "ms": 30000, "rid": 77})
    if not w.wait_line("GOT", 5):
        fail("the plain worker never got the request")
    w.stop()
    started = time.monotonic()
    r = c.recv(service, 5000)
    c.close()
    if r is None:
        fail("no reply after the plain worker was killed holding the request")
    if r.get("ok") is not False or r.get("code") != "UNAVAILABLE" or not r.get("message"):
        fail("expected the broker's UNAVAILABLE error body, got %r" % (r,))
    if r.get("rid") != 77:
        fail("the error reply lost the rid: %r" % (r,))
    if "worker" in r:
        fail("the error reply came from the worker, not the broker: %r" % (r,))
    print("  killed mid-request: %r after %.2f s" % (r, time.monotonic() - started))


def case_heartbeats(ctx, front, workers_ep, children):
    service = b"plain.beat"
    mute_after = 5.0
    w = Worker(workers_ep, "plain.beat", "py-beat", mute_after_s=mute_after)
    children.append(w)
    if not wait_mmi(ctx, front, service, "200", 10):
        fail("the plain worker never registered")
    # Idle for 3 s, over three expiry periods (heartbeat x liveness =
    # 0.9 s): it stays registered only because the broker gets its
    # HEARTBEATs, and it must get the broker's.
    time.sleep(3.0)
    if w.count("MUTED"):
        fail("the worker muted too early for the test")
    if mmi_service(ctx, front, service) != "200":
        fail("the broker dropped a plain worker that was heartbeating")
    sent, received = w.count("HB-SENT"), w.count("HB-RECV")
    if sent < 5 or received < 5:
        fail("heartbeats: the worker sent %d and received %d in 3 s" % (sent, received))
    if w.count("READY") != 1:
        fail("the worker reconnected while heartbeating: %r" % (w.lines,))
    c = Client(ctx, front)
    r = c.call(service, {"op": "sum", "numbers": [1, 2, 3], "rid": 1})
    if not r or r.get("sum") != 6:
        fail("the heartbeating worker did not answer: %r" % (r,))
    # Now it goes silent: the broker must drop it within about heartbeat x
    # liveness, and stop heartbeating it.
    if not w.wait_line("MUTED", 8):
        fail("the worker never muted")
    muted = time.monotonic()
    if not wait_mmi(ctx, front, service, "404", 5):
        fail("the broker kept a worker that stopped heartbeating")
    dropped_after = time.monotonic() - muted
    if dropped_after > 2.0:
        fail("the silent worker was dropped only after %.2f s" % dropped_after)
    time.sleep(0.5)
    before = w.count("HB-RECV")
    time.sleep(1.0)
    if w.count("HB-RECV") != before:
        fail("the broker kept heartbeating a worker it dropped")
    r = c.call(service, {"op": "sum", "numbers": [1], "rid": 2}, timeout_ms=5000)
    c.close()
    if not r or r.get("code") != "UNAVAILABLE":
        fail("a request for the dropped worker's service was not UNAVAILABLE: %r" % (r,))
    check_no_bad([w])
    print("  heartbeats: %d sent, %d received; silent worker dropped after %.2f s" %
          (sent, received, dropped_after))


def case_mixed_with_our_worker(ctx, front, workers_ep, bin_dir, children, procs):
    """A plain worker and primary-echo-worker on the same service."""
    service = b"echo"
    echo = subprocess.Popen([os.path.join(bin_dir, "primary-echo-worker"), "--broker", workers_ep,
                             "--heartbeat-ms", str(HEARTBEAT_MS)])
    procs.append(echo)
    w = Worker(workers_ep, "echo", "py-echo")
    children.append(w)
    if not wait_slots(ctx, front, service, 2, 10):
        fail("the two echo workers never registered")
    errors = []
    by = {"plain": 0, "ours": 0}
    lock = threading.Lock()

    def run_client(index):
        c = Client(ctx, front)
        try:
            expected, sent, done = {}, 0, 0
            while done < 50:
                while sent < 50 and sent - done < 4:
                    rid = index * 1000 + sent
                    expected[rid] = "client %d request %d" % (index, sent)
                    c.send(service, {"op": "echo", "payload": expected[rid], "rid": rid})
                    sent += 1
                r = c.recv(service, 5000)
                if r is None:
                    errors.append("client %d: no reply" % index)
                    return
                done += 1
                rid = r.get("rid")
                if r.get("ok") is not True or rid not in expected or r.get("payload") != expected.pop(rid):
                    errors.append("client %d: reply %r is not the echo of a request of its own" % (index, r))
                    return
                with lock:
                    by["plain" if r.get("worker") == "py-echo" else "ours"] += 1
        finally:
            c.close()

    threads = [threading.Thread(target=run_client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        fail(errors[0])
    if by["plain"] == 0 or by["ours"] == 0:
        fail("both workers should have served: %r" % (by,))
    check_no_bad([w])
    print("  plain and our worker on one service: %r" % (by,))


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--worker":
        endpoint, service, name, heartbeat_ms = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
        mute = float(sys.argv[6]) if len(sys.argv) > 6 else 0
        worker_main(endpoint, service, name, heartbeat_ms, mute)
        return 0
    if len(sys.argv) != 2:
        print("usage: plain_rfc7_test.py BIN_DIR", file=sys.stderr)
        return 2
    bin_dir = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="pt-plain-")
    procs, children = [], []
    ctx = zmq.Context()
    try:
        ep_file = os.path.join(tmp, "ep")
        broker = subprocess.Popen([
            os.path.join(bin_dir, "primary-broker"), "--insecure",
            "--front", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*",
            "--workers-endpoint", "tcp://127.0.0.1:*", "--event-sink", "tcp://127.0.0.1:*",
            "--endpoints-file", ep_file, "--heartbeat-ms", str(HEARTBEAT_MS),
            "--request-timeout-ms", "2000"])
        procs.append(broker)
        eps = wait_for_endpoints(ep_file, broker)
        front, workers_ep = eps["front"], eps["workers"]
        case_requests_and_replies_match(ctx, front, workers_ep, children)
        case_worker_killed_mid_request(ctx, front, workers_ep, children)
        case_heartbeats(ctx, front, workers_ep, children)
        case_mixed_with_our_worker(ctx, front, workers_ep, bin_dir, children, procs)
        if broker.poll() is not None:
            fail("broker died during the test")
    finally:
        for w in children:
            w.stop()
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait()
        ctx.destroy(linger=0)
        shutil.rmtree(tmp, ignore_errors=True)
    print("plain RFC 7 peers OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
