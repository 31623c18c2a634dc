#!/usr/bin/env python3
"""Sets up N bridged calls through centralino for bench/rtp_relay.sh (stdlib only, loopback).

Registers extension 201 (digest, MD5, qop=auth) with its Contact at our UAS socket, then places
N calls from the trunk address (127.0.0.2) to 201, answers each on the UAS side, and writes the
media legs file for rtpload: one line per leg, "LOCAL_PORT RELAY_PORT" (the port we send from and
receive on, and the switch's port for that leg, from the SDP it sent us). Then it keeps the
calls up until stdin closes or a line arrives, and hangs them all up with BYE from the trunk.

usage: sipcalls.py --switch 127.0.0.1:PORT --calls N --media-base PORT --legs FILE
"""
import argparse, hashlib, os, re, select, socket, sys, time, uuid

ap = argparse.ArgumentParser()
ap.add_argument("--switch", required=True)
ap.add_argument("--calls", type=int, required=True)
ap.add_argument("--media-base", type=int, required=True)
ap.add_argument("--legs", required=True)
ap.add_argument("--uac-port", type=int, default=15280)
ap.add_argument("--uas-port", type=int, default=15270)
ap.add_argument("--ext", default="201")
ap.add_argument("--password", default="pw201")
ap.add_argument("--batch", type=int, default=50)
args = ap.parse_args()

host, port = args.switch.rsplit(":", 1)
SW = (host, int(port))

uac = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
uac.bind(("127.0.0.2", args.uac_port))
uas = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
uas.bind(("127.0.0.1", args.uas_port))
for s in (uac, uas):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)


def parse(data):
    text = data.decode(errors="replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    hdrs = []
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs.append((k.strip().lower(), v.strip()))
    return lines[0], hdrs, body


def h(hdrs, name, short=None):
    for k, v in hdrs:
        if k == name or (short and k == short):
            return v
    return None


def hall(hdrs, name, short=None):
    return [v for k, v in hdrs if k == name or (short and k == short)]


def sdp_port(body):
    m = re.search(r"^m=audio (\d+)", body, re.M)
    return int(m.group(1)) if m else None


def sdp(port):
    return ("v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def branch():
    return "z9hG4bK" + uuid.uuid4().hex[:16]


def recv(sock, timeout):
    r, _, _ = select.select([sock], [], [], timeout)
    if not r:
        return None
    data, addr = sock.recvfrom(65535)
    return data, addr


# --- registration --------------------------------------------------------------------------
def register():
    cid = uuid.uuid4().hex + "@bench"
    tag = uuid.uuid4().hex[:8]
    uri = f"sip:{SW[0]}:{SW[1]}"
    auth = ""
    for cseq in (1, 2):
        msg = (f"REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{args.uas_port};branch={branch()}\r\n"
               f"From: <sip:{args.ext}@{SW[0]}>;tag={tag}\r\nTo: <sip:{args.ext}@{SW[0]}>\r\nCall-ID: {cid}\r\n"
               f"CSeq: {cseq} REGISTER\r\nContact: <sip:{args.ext}@127.0.0.1:{args.uas_port}>\r\n{auth}"
               "Max-Forwards: 70\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n")
        uas.sendto(msg.encode(), SW)
        while True:
            got = recv(uas, 5)
            if got is None:
                sys.exit("no answer to REGISTER")
            first, hdrs, _ = parse(got[0])
            if not first.startswith("SIP/2.0 1"):
                break
        code = int(first.split()[1])
        if code == 200:
            return
        if code != 401 or cseq == 2:
            sys.exit(f"REGISTER refused: {first}")
        ch = h(hdrs, "www-authenticate")
        p = dict(re.findall(r'(\w+)="?([^",]*)"?', ch.split(" ", 1)[1]))
        realm, nonce = p["realm"], p["nonce"]
        ha1 = hashlib.md5(f"{args.ext}:{realm}:{args.password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
        cnonce, nc = uuid.uuid4().hex[:8], "00000001"
        resp = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        auth = (f'Authorization: Digest username="{args.ext}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                f'response="{resp}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"'
                + (f', opaque="{p["opaque"]}"' if "opaque" in p else "") + "\r\n")


register()

# --- calls ---------------------------------------------------------------------------------
calls = {}        # A-leg Call-ID -> dict
uas_calls = {}    # B-leg Call-ID -> dict (our answer, for retransmissions)
legs = []
next_media = args.media_base


def send_invite(i):
    global next_media
    a_port = next_media
    next_media += 2
    cid = f"bench{i}-{uuid.uuid4().hex[:12]}"
    c = {"i": i, "cid": cid, "tag": uuid.uuid4().hex[:8], "a_port": a_port, "state": "calling", "sent": time.time()}
    body = sdp(a_port)
    c["invite"] = (f"INVITE sip:{args.ext}@{SW[0]}:{SW[1]} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:{args.uac_port};branch={branch()}\r\n"
                   f"From: <sip:3351234567@127.0.0.2>;tag={c['tag']}\r\nTo: <sip:{args.ext}@{SW[0]}>\r\nCall-ID: {cid}\r\n"
                   f"CSeq: 1 INVITE\r\nContact: <sip:trunk@127.0.0.2:{args.uac_port}>\r\nMax-Forwards: 70\r\n"
                   f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
    calls[cid] = c
    uac.sendto(c["invite"], SW)


def on_uas(data, addr):
    """The switch's side towards the phone: answer INVITEs at once, 200 to BYE."""
    global next_media
    first, hdrs, body = parse(data)
    if first.startswith("SIP/2.0"):
        return
    method = first.split()[0]
    cid = h(hdrs, "call-id", "i")
    vias = "".join(f"Via: {v}\r\n" for v in hall(hdrs, "via", "v"))
    base = (f"{vias}From: {h(hdrs, 'from', 'f')}\r\nCall-ID: {cid}\r\nCSeq: {h(hdrs, 'cseq')}\r\n")
    to = h(hdrs, "to", "t")
    if method == "INVITE":
        st = uas_calls.get(cid)
        if st is None:
            b_port = next_media
            next_media += 2
            relay = sdp_port(body)
            legs.append((b_port, relay))
            body2 = sdp(b_port)
            rr = "".join(f"Record-Route: {v}\r\n" for v in hall(hdrs, "record-route"))
            st = {"resp": (f"SIP/2.0 200 OK\r\n{base}{rr}To: {to};tag={uuid.uuid4().hex[:8]}\r\n"
                           f"Contact: <sip:{args.ext}@127.0.0.1:{args.uas_port}>\r\nContent-Type: application/sdp\r\n"
                           f"Content-Length: {len(body2)}\r\n\r\n{body2}").encode()}
            uas_calls[cid] = st
        uas.sendto(st["resp"], addr)
    elif method in ("BYE", "CANCEL", "OPTIONS"):
        uas.sendto(f"SIP/2.0 200 OK\r\n{base}To: {to}\r\nContent-Length: 0\r\n\r\n".encode(), addr)
        if method == "BYE":
            uas_calls.pop(cid, None)


def on_uac(data):
    first, hdrs, body = parse(data)
    if not first.startswith("SIP/2.0"):
        # A request towards the trunk (e.g. BYE on media timeout): answer 200.
        vias = "".join(f"Via: {v}\r\n" for v in hall(hdrs, "via", "v"))
        uac.sendto((f"SIP/2.0 200 OK\r\n{vias}From: {h(hdrs, 'from', 'f')}\r\nTo: {h(hdrs, 'to', 't')}\r\n"
                    f"Call-ID: {h(hdrs, 'call-id', 'i')}\r\nCSeq: {h(hdrs, 'cseq')}\r\nContent-Length: 0\r\n\r\n").encode(), SW)
        return
    code = int(first.split()[1])
    cid = h(hdrs, "call-id", "i")
    c = calls.get(cid)
    if c is None:
        return
    method = h(hdrs, "cseq").split()[1]
    if method == "INVITE" and code >= 200:
        to = h(hdrs, "to", "t")
        contact = re.search(r"<([^>]+)>", h(hdrs, "contact", "m") or f"<sip:{args.ext}@{SW[0]}:{SW[1]}>").group(1)
        c["to"], c["contact"] = to, contact
        ack = (f"ACK {contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:{args.uac_port};branch={branch()}\r\n"
               f"From: <sip:3351234567@127.0.0.2>;tag={c['tag']}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: 1 ACK\r\n"
               "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        uac.sendto(ack.encode(), SW)
        if c["state"] == "calling":
            if code == 200:
                c["state"] = "up"
                legs.append((c["a_port"], sdp_port(body)))
            else:
                c["state"] = f"failed {code}"
    elif method == "BYE" and code >= 200:
        c["state"] = "ended"


def pump(timeout):
    r, _, _ = select.select([uac, uas], [], [], timeout)
    for s in r:
        while True:
            try:
                data, addr = s.recvfrom(65535, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if s is uas:
                on_uas(data, addr)
            else:
                on_uac(data)


t0 = time.time()
for start in range(0, args.calls, args.batch):
    batch = range(start, min(start + args.batch, args.calls))
    for i in batch:
        send_invite(i)
    deadline = time.time() + 10
    while time.time() < deadline and any(c["state"] == "calling" for c in calls.values()):
        pump(0.1)
        for c in calls.values():  # retransmit INVITEs unanswered for 1 s
            if c["state"] == "calling" and time.time() - c["sent"] > 1:
                c["sent"] = time.time()
                uac.sendto(c["invite"], SW)
up = sum(1 for c in calls.values() if c["state"] == "up")
setup_s = time.time() - t0
# Settle: answer retransmissions, collect late B-leg legs.
end = time.time() + 0.5
while time.time() < end:
    pump(0.05)
with open(args.legs, "w") as f:
    for lp, rp in legs:
        f.write(f"{lp} {rp}\n")
failed = {c["state"] for c in calls.values() if c["state"] != "up"}
print(f"calls_up={up} calls_wanted={args.calls} legs={len(legs)} setup_seconds={setup_s:.2f}"
      + (f" failures={sorted(failed)}" if failed else ""), flush=True)

# Hold the calls until told to hang up (a line or EOF on stdin), answering what arrives.
while True:
    r, _, _ = select.select([sys.stdin, uac, uas], [], [], 1)
    if sys.stdin in r:
        sys.stdin.readline()
        break
    for s in r:
        if s is not sys.stdin:
            pump(0)

def send_bye(c):
    bye = (f"BYE {c['contact']} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:{args.uac_port};branch={c['bye_branch']}\r\n"
           f"From: <sip:3351234567@127.0.0.2>;tag={c['tag']}\r\nTo: {c['to']}\r\nCall-ID: {c['cid']}\r\nCSeq: 2 BYE\r\n"
           "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    c["sent"] = time.time()
    uac.sendto(bye.encode(), SW)


byes = 0
for c in calls.values():
    if c["state"] != "up":
        continue
    c["bye_branch"] = branch()
    send_bye(c)
    byes += 1
    if byes % 50 == 0:
        pump(0.01)
deadline = time.time() + 10
while time.time() < deadline and any(c["state"] == "up" for c in calls.values()):
    pump(0.1)
    for c in calls.values():  # retransmit BYEs unanswered for 1 s (the same transaction)
        if c["state"] == "up" and time.time() - c["sent"] > 1:
            send_bye(c)
ended = sum(1 for c in calls.values() if c["state"] == "ended")
print(f"byes={byes} ended={ended}", flush=True)
