#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/: a few small valid inputs
per target. Run from anywhere; rewrites the files it owns. A tiny MessagePack
encoder is inlined so no package is needed."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def mp(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        return b"\xd3" + struct.pack(">q", v) if v < 0 else b"\xcf" + struct.pack(">Q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, bytes):
        return b"\xc4" + bytes([len(v)]) + v
    if isinstance(v, str):
        b = v.encode()
        return (bytes([0xA0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b
    if isinstance(v, list):
        return bytes([0x90 | len(v)]) + b"".join(mp(e) for e in v)
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(mp(k) + mp(e) for k, e in v.items())
    raise TypeError(v)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


requests = {
    "heartbeat": {"op": "heartbeat", "computer": "ws-01", "license": "L-1", "version": "1.2",
                  "results": [{"id": "c1", "ok": True}], "rid": 7},
    "reserve": {"op": "reserve", "computer": "PC-1"},
    "unlock": {"op": "unlock", "unlock_code": "abc.def"},
    "command": {"op": "command", "computer": "PC-2", "command": "restart", "args": {"delay": 5}},
    "computers": {"op": "computers", "limit": 10, "state": "active", "cursor": ""},
    "log": {"op": "log", "since": "0-0", "limit": 5, "types": ["license.reserved"]},
    "fetch": {"op": "fetch", "sha256": "a" * 64, "offset": 0, "length": 1024},
    "approve": {"op": "approve", "component": "client", "version": "2.0", "rollout": 50},
    "echo": {"op": "echo", "payload": [1, -1, 1.5, None, b"\x00", "x", {"k": False}]},
    "status": {"op": "status"},
}
for name, body in requests.items():
    write("fuzz_request", name, mp(body))
write("fuzz_request", "peer", "127.0.0.1 admin")


def batch_entry(client, meta, tag, body):
    """One entry of a worker batch frame (common/mdp.hpp); meta None: a REPLIES entry."""
    out = struct.pack(">H", len(client)) + client
    if meta is not None:
        out += struct.pack(">H", len(meta)) + meta
    return out + bytes([len(tag)]) + tag + struct.pack(">I", len(body)) + body


write("fuzz_request", "requests-batch",
      batch_entry(b"\x00k\x8bEg", b"127.0.0.1 client", b"\x01" * 8, mp(requests["heartbeat"])) +
      batch_entry(b"\x00k\x8bEh", b"127.0.0.1 admin", b"\x02" * 8, mp(requests["status"])))
write("fuzz_request", "replies-batch",
      batch_entry(b"\x00k\x8bEg", None, b"\x01" * 8, mp({"ok": True, "rid": 7})))

write("fuzz_codec", "map", mp(requests["heartbeat"]))
write("fuzz_codec", "kinds", mp(requests["echo"]))
write("fuzz_codec", "ints", mp([0, 127, -32, -33, 255, 65536, 2**32, 2**63, -2**63]))
write("fuzz_codec", "nested", mp({"a": {"b": {"c": [[[]]]}}}))
write("fuzz_codec", "f32", b"\xca\x3f\x80\x00\x00")

unlock = {"serial": "SN-1", "licenses": 10, "registration": "PS1-SN-1-0123456789ABCDEF01234567",
          "issued": 1700000000000}
lease = {"computer": "WS-01", "license": "L-1", "serial": "SN-1", "issued": 1699990000,
         "expires": 1700100000}
write("fuzz_tokens", "unlock_signed", b"\x01" + mp(unlock))
write("fuzz_tokens", "lease_signed", b"\x01" + mp(lease))
write("fuzz_tokens", "text", b"\x00" + b"gaVzZXJpYWykU04tMQ.AAAA")
write("fuzz_tokens", "batch", b"\x02" + b"WS-01\nWS-02\nWS-03\nWS-04\nWS-05")
write("fuzz_tokens", "text3", b"\x00" + b"gaVzZXJpYWykU04tMQ.AAAA.AAAA")
write("fuzz_tokens", "registration", b"\x00" + b"PS1-SN-1-0123456789ABCDEF01234567")

for name, url in {
    "tcp": "redis://127.0.0.1:6379/0",
    "auth": "redis://user:p%40ss@redis.example:6380/2",
    "ipv6": "redis://[::1]:6379",
    "unix": "unix:///run/redis/redis.sock?db=3&password=x&user=u",
    "unix_auth": "unix://:secret@/tmp/r.sock",
    "sentinel": "sentinel://10.0.0.1:26379,s2,[::1]:26380/mymaster?db=2&password=p%26w",
    "sentinel_auth": "sentinel://user:pw@s1:26379/primary.ps-1?sentinel_password=sp&sentinel_user=mon",
}.items():
    write("fuzz_redis_url", name, url)

write("fuzz_setup", "secure",
      '{"computer": "WS-01", "license": "L-1", "serial": "SN-1",\n'
      ' "endpoints": ["tcp://server:16770", "tcp://backup:16770"],\n'
      ' "server_key": "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",\n'
      ' "lease_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}\n')
write("fuzz_setup", "insecure",
      '{"computer":"ws-02","license":"L-2","serial":"SN-1","endpoints":["tcp://10.0.0.1:16770"],'
      '"lease_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","extra":[1,2.5e3,true,null,"\\u00e9\\n"]}')
