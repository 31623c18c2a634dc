#!/usr/bin/env python3
"""Sends one SIP OPTIONS over UDP to HOST:PORT; exits 0 if any response arrives within 0.3 s."""
import socket, sys, uuid

host, port = sys.argv[1].rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(0.3)
lp = s.getsockname()[1]
b = "z9hG4bK" + uuid.uuid4().hex
msg = (f"OPTIONS sip:ping@{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch={b}\r\n"
       f"From: <sip:probe@127.0.0.1>;tag=p{b[-8:]}\r\nTo: <sip:ping@{host}>\r\nCall-ID: {b}\r\n"
       "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
s.sendto(msg.encode(), (host, int(port)))
try:
    data = s.recv(65535)
    sys.exit(0 if data.startswith(b"SIP/2.0 ") else 1)
except OSError:
    sys.exit(1)
