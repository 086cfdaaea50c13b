#!/usr/bin/env python3
"""Writes the seed corpora tools/fuzz.sh starts each fuzz target from.

    python3 fuzz/seeds/make_seeds.py

- handshake/: real ffmpeg C0C1 (tests/fixtures/handshake/ffmpeg_c0c1.bin) plus a C2, and a
  plain (version 0) handshake; byte 0 of every input picks the read sizes.
- chunk_decoder/: the first messages after the handshake of real sessions
  (tests/fixtures/sessions/): ffmpeg's connect/publish/metadata, our server's answers and
  media as sent to a player.
- amf0/, amf3/: hand-made values covering every marker the decoders know.
- server_session/: [answer policy, read size] + what real clients send after the handshake
  (tests/fixtures/sessions/*.c2s.bin).
- http_request/: [cut] + hand-made request heads (FLV, playlists with blocking reload,
  percent-encoded names, pipelining, keep-alive, bodies).
- media/: tag bodies (sequence headers, frames) of the FLV fixtures (tests/fixtures/media/)
  and one small FLV file.
- package/: [mode] + the fixtures' first tags as `[kind, delta u16, length u16, payload]`
  records, for TS, fMP4 and fMP4 with parts.
Seeds stay under 4 KiB so libFuzzer's default max_len covers them.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(ROOT, "tests", "fixtures")
HANDSHAKE_LEN = 1 + 1536 + 1536
MAX_SEED = 4096


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(*path):
    with open(os.path.join(FIX, *path), "rb") as f:
        return f.read()


# ---- handshake: [piece-length seed] + C0 C1 C2 ----
c0c1 = read("handshake", "ffmpeg_c0c1.bin")
write("handshake", "ffmpeg_digest", b"\x07" + c0c1 + c0c1[1:])
write("handshake", "ffmpeg_digest_bytewise", b"\x00" + c0c1 + c0c1[1:])
plain_c1 = struct.pack(">II", 0, 0) + bytes((i * 7) & 0xFF for i in range(1528))
write("handshake", "plain", b"\x05\x03" + plain_c1 + plain_c1)


# ---- chunk decoder: whole messages right after the handshake ----
def after_handshake(name):
    data = read("sessions", name)[HANDSHAKE_LEN:]
    return data[:MAX_SEED]


for name in ("ffmpeg_publish.bin", "ffmpeg_publish.c2s.bin", "gst_publish.c2s.bin",
             "ffmpeg_play.s2c.bin", "rtmpdump_play.c2s.bin", "gst_play.s2c.bin"):
    if os.path.exists(os.path.join(FIX, "sessions", name)):
        write("chunk_decoder", name.replace(".bin", ""), after_handshake(name))
# Type 0..3 headers, extended timestamp, 2- and 3-byte csids, Set Chunk Size and Abort.
hand = [
    "02 000000 000004 01 00000000 00000080",  # Set Chunk Size 128 on csid 2
    "02 000000 000004 02 00000000 00000009",  # Abort csid 9
    "00 00 ffffff 000005 09 01000000 00012345 1710000000",  # csid 64 (2-byte), extended ts
    "07 000000 000003 08 01000000 010203",  # type 0 on csid 7
    "47 00000a 000003 08 040506",  # type 1
    "87 00000a 070809",  # type 2
    "c7 0a0b0c",  # type 3
    "01 0001 000000 000001 08 01000000 aa",  # csid 320 (3-byte)
]
write("chunk_decoder", "hand_headers", bytes.fromhex("".join(hand).replace(" ", "")))


# ---- AMF0 ----
def a0_num(v):
    return b"\x00" + struct.pack(">d", v)


def a0_str(s):
    b = s.encode()
    return b"\x02" + struct.pack(">H", len(b)) + b


def a0_key(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def a0_obj(pairs, marker=b"\x03"):
    return marker + b"".join(a0_key(k) + v for k, v in pairs) + b"\x00\x00\x09"


connect = (a0_str("connect") + a0_num(1) + a0_obj([
    ("app", a0_str("live")), ("type", a0_str("nonprivate")),
    ("flashVer", a0_str("FMLE/3.0 (compatible; Lavf59.27.100)")),
    ("tcUrl", a0_str("rtmp://127.0.0.1:1935/live")), ("fpad", b"\x01\x00"),
    ("capabilities", a0_num(15)), ("audioCodecs", a0_num(4071)),
    ("videoCodecs", a0_num(252)), ("objectEncoding", a0_num(0))]))
write("amf0", "connect", connect)
meta = (a0_str("@setDataFrame") + a0_str("onMetaData") + b"\x08" + struct.pack(">I", 3)
        + a0_key("width") + a0_num(160) + a0_key("videocodecid") + a0_num(7)
        + a0_key("stereo") + b"\x01\x00" + b"\x00\x00\x09")
write("amf0", "metadata", meta)
write("amf0", "scalars", a0_num(float("nan")) + b"\x01\x01" + b"\x05" + b"\x06" + b"\x0d"
      + b"\x0b" + struct.pack(">dh", 1.7e12, 0) + b"\x0c" + struct.pack(">I", 3) + b"abc"
      + b"\x0f" + struct.pack(">I", 4) + b"<a/>")
write("amf0", "arrays_refs", b"\x0a" + struct.pack(">I", 2) + a0_num(1) + a0_obj([("x", b"\x05")])
      + b"\x07\x00\x00" + a0_obj([("nested", a0_obj([("deep", a0_str("y"))]))]))
write("amf0", "typed_object", b"\x10" + a0_key("flash.Point") + a0_key("x") + a0_num(1)
      + b"\x00\x00\x09")
# AVM+ switch: an AMF3 object inside AMF0.
write("amf0", "avmplus", b"\x11\x0a\x0b\x01\x03a\x04\x05\x01" + b"\x11\x06\x07abc")


# ---- AMF3 ----
def u29(n):
    if n < 0x80:
        return bytes([n])
    if n < 0x4000:
        return bytes([(n >> 7) | 0x80, n & 0x7F])
    if n < 0x200000:
        return bytes([(n >> 14) | 0x80, ((n >> 7) & 0x7F) | 0x80, n & 0x7F])
    return bytes([(n >> 22) | 0x80, ((n >> 15) & 0x7F) | 0x80, ((n >> 8) & 0x7F) | 0x80,
                  n & 0xFF])


def a3_sv(s):  # string value without marker, inline
    b = s.encode()
    return u29(len(b) << 1 | 1) + b


write("amf3", "scalars", b"\x00\x01\x02\x03" + b"\x04" + u29(0) + b"\x04" + u29(0x7F)
      + b"\x04" + u29(0x3FFF) + b"\x04" + u29(0x1FFFFF) + b"\x04" + u29(0x1FFFFFFF)
      + b"\x05" + struct.pack(">d", -0.5) + b"\x08\x01" + struct.pack(">d", 1.7e12))
write("amf3", "strings_refs", b"\x06" + a3_sv("hello") + b"\x06" + u29(0 << 1)
      + b"\x06\x01" + b"\x07" + a3_sv("<x/>") + b"\x0b" + a3_sv("<y/>"))
write("amf3", "arrays", b"\x09" + u29(2 << 1 | 1) + a3_sv("k") + b"\x04\x01" + b"\x01"
      + b"\x04\x02" + b"\x06" + a3_sv("v") + b"\x09" + u29(0 << 1))
# Sealed class with 2 members, then a dynamic anonymous object, then a trait reference.
write("amf3", "objects", b"\x0a" + u29(2 << 4 | 0x03) + a3_sv("Pt") + a3_sv("x") + a3_sv("y")
      + b"\x04\x01\x04\x02"
      + b"\x0a\x0b\x01" + a3_sv("dyn") + b"\x03" + b"\x01"
      + b"\x0a" + u29(0 << 2 | 0x01) + b"\x04\x05\x04\x06")
write("amf3", "byte_array", b"\x0c" + u29(4 << 1 | 1) + b"\x00\x01\x02\x03" + b"\x0c" + u29(0))
write("amf3", "nested", b"\x09\x03\x01" + b"\x09\x03\x01" + b"\x09\x03\x01" + b"\x0a\x0b\x01\x01")


# ---- server_session: [policy, read size] + the client's bytes after C2 ----
for name in ("ffmpeg_publish.c2s.bin", "gst_publish.c2s.bin", "rtmpdump_play.c2s.bin",
             "ffmpeg_play.c2s.bin", "gst_play.c2s.bin"):
    if os.path.exists(os.path.join(FIX, "sessions", name)):
        base = name.replace(".c2s.bin", "")
        write("server_session", base, b"\x0f\x00" + after_handshake(name))
        write("server_session", base + "_cut", b"\x07\x0d" + after_handshake(name))

# ---- http_request: [cut] + request heads ----
heads = {
    "flv": b"GET /live/cam.flv HTTP/1.1\r\nHost: edge\r\nConnection: keep-alive\r\n\r\n",
    "blocking": b"GET /live/cam.m3u8?_HLS_msn=12&_HLS_part=3 HTTP/1.1\r\nHost: e\r\n\r\n",
    "segment": b"GET /live/caf%C3%A9/video/seg-4.m4s HTTP/1.1\r\n\r\n"
               b"GET /live/cam/init-1.mp4 HTTP/1.0\r\nConnection: close\r\n\r\n",
    "body": b"POST /live/x.mpd HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    "dots": b"GET /live/%2e%2e/%2Fetc.flv?x=1 HTTP/1.1\r\n\r\n",
}
for name, head in heads.items():
    write("http_request", name, bytes([len(head) // 2]) + head)


# ---- media and package: tags of the FLV fixtures ----
def flv_tags(name):
    data = read("media", name)
    at = struct.unpack(">I", data[5:9])[0] + 4
    tags = []
    while at + 11 <= len(data):
        kind = data[at]
        size = int.from_bytes(data[at + 1:at + 4], "big")
        ts = int.from_bytes(data[at + 4:at + 7], "big") | data[at + 7] << 24
        body = data[at + 11:at + 11 + size]
        tags.append((kind, ts, body))
        at += 11 + size + 4
    return tags


for name in ("h264_aac.flv", "hevc_aac.flv", "av1_opus.flv"):
    base = name.replace(".flv", "")
    tags = flv_tags(name)
    seen = {}
    for kind, ts, body in tags:
        # The sequence headers and the first few frames of each kind.
        key = (kind, body[:2])
        if seen.get(key, 0) < 2:
            seen[key] = seen.get(key, 0) + 1
            write("media", f"{base}_{kind}_{body[:2].hex()}_{seen[key]}", body[:MAX_SEED])
    records = b""
    last = 0
    for kind, ts, body in tags:
        code = {8: 0, 9: 1}.get(kind, 2)
        body = body[:3000]
        records += bytes([code]) + struct.pack(">HH", (ts - last) & 0xFFFF, len(body)) + body
        last = ts
        if len(records) > 16384:
            break
    for mode in (0, 1, 3):
        write("package", f"{base}_mode{mode}", bytes([mode]) + records)
write("media", "small_flv", read("media", "h264_aac.flv")[:MAX_SEED])
print("wrote seeds under", HERE)
