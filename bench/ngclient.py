#!/usr/bin/env python3
"""A tiny rtpengine ng-protocol client (bencode over UDP, stdlib only) for bench/rtp_relay.sh.

setup:    offer/answer N calls (A side at 127.0.0.1:media_base+4i, B side at +2), write the legs
          file for rtpload ("LOCAL_PORT RELAY_PORT" per leg), then wait for a line or EOF on
          stdin and delete every call.
usage: ngclient.py --ng 127.0.0.1:PORT --calls N --media-base PORT --legs FILE
"""
import argparse, re, socket, sys, uuid


def benc(x):
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, list):
        return b"l" + b"".join(benc(i) for i in x) + b"e"
    if isinstance(x, dict):
        return b"d" + b"".join(benc(k) + benc(v) for k, v in sorted(x.items())) + b"e"
    raise TypeError(type(x))


def bdec(b, i=0):
    c = b[i:i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1:j]), j + 1
    if c == b"l":
        out, i = [], i + 1
        while b[i:i + 1] != b"e":
            v, i = bdec(b, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        out, i = {}, i + 1
        while b[i:i + 1] != b"e":
            k, i = bdec(b, i)
            v, i = bdec(b, i)
            out[k.decode()] = v
        return out, i + 1
    j = b.index(b":", i)
    n = int(b[i:j])
    return b[j + 1:j + 1 + n], j + 1 + n


class Ng:
    def __init__(self, addr):
        self.addr = addr
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.s.settimeout(2)

    def cmd(self, d):
        cookie = uuid.uuid4().hex[:12].encode()
        for _ in range(3):
            self.s.sendto(cookie + b" " + benc(d), self.addr)
            try:
                while True:
                    data = self.s.recv(65535)
                    ck, _, rest = data.partition(b" ")
                    if ck == cookie:
                        r, _ = bdec(rest)
                        if r.get("result") not in (b"ok", b"pong"):
                            raise RuntimeError(f"{d['command']}: {r}")
                        return r
            except socket.timeout:
                continue
        raise RuntimeError(f"no answer from rtpengine to {d['command']}")


def sdp(port):
    return ("v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def port_of(r):
    return int(re.search(rb"^m=audio (\d+)", r["sdp"], re.M).group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ng", required=True)
    ap.add_argument("--calls", type=int, required=True)
    ap.add_argument("--media-base", type=int, required=True)
    ap.add_argument("--legs", required=True)
    a = ap.parse_args()
    host, port = a.ng.rsplit(":", 1)
    ng = Ng((host, int(port)))
    ng.cmd({"command": "ping"})
    legs, ids = [], []
    for i in range(a.calls):
        cid, ft, tt = f"bench-{i}-{uuid.uuid4().hex[:8]}", f"a{i}", f"b{i}"
        pa, pb = a.media_base + 4 * i, a.media_base + 4 * i + 2
        offer = ng.cmd({"command": "offer", "call-id": cid, "from-tag": ft, "sdp": sdp(pa),
                        "replace": ["origin", "session-connection"]})
        answer = ng.cmd({"command": "answer", "call-id": cid, "from-tag": ft, "to-tag": tt, "sdp": sdp(pb),
                         "replace": ["origin", "session-connection"]})
        # A sends to the port in the answer (rtpengine's port towards A); B to the offer's.
        legs.append((pa, port_of(answer)))
        legs.append((pb, port_of(offer)))
        ids.append((cid, ft))
    with open(a.legs, "w") as f:
        for lp, rp in legs:
            f.write(f"{lp} {rp}\n")
    print(f"calls_up={len(ids)} calls_wanted={a.calls} legs={len(legs)}", flush=True)
    sys.stdin.readline()
    for cid, ft in ids:
        ng.cmd({"command": "delete", "call-id": cid, "from-tag": ft})
    print(f"deleted={len(ids)}", flush=True)


main()
