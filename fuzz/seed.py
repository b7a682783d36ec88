#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target from the repository's own
protocol fixtures and example resources. Each target's input starts with
selector bytes (see the target's doc comment), so a fixture is written once
per selector that applies to it. Run from anywhere; rewrites fuzz/seeds/."""

import hashlib
import json
import pathlib
import shutil

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "proxy" / "tests" / "fixtures"
OUT = ROOT / "fuzz" / "seeds"


def put(target, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def fixture(name):
    return (FIX / name).read_bytes()


def main():
    shutil.rmtree(OUT, ignore_errors=True)

    # request: selector % 7 picks the client API; 0x80 asks for a stream
    gemini = fixture("gemini-generate-request.json")
    for sel, body in [
        (0, fixture("openai-chat-request.json")),
        (1, fixture("responses-request.json")),
        (2, fixture("anthropic-messages-request.json")),
        (3, gemini),
        (0x83, gemini),
        (4, json.dumps({"generateContentRequest": json.loads(gemini)}).encode()),
        (5, b'{"model":"m","input":["one","two"],"encoding_format":"base64"}'),
        (6, b'{"content":{"parts":[{"text":"one"}]}}'),
        (0x86, b'{"requests":[{"model":"models/m","content":{"parts":[{"text":"a"}]}}]}'),
    ]:
        put("request", bytes([sel]) + body)

    # response: selector % 3 picks the upstream protocol
    for sel, name in [(0, "openai-chat-response.json"),
                      (1, "anthropic-messages-response.json"),
                      (2, "gemini-generate-response.json")]:
        put("response", bytes([sel]) + fixture(name))
    put("response", b"\x00" + b'{"error":{"message":"Incorrect API key provided: sk-fuzz-account-key-0123","type":"invalid_request_error","code":"invalid_api_key"}}')
    put("response", b"\x80" + b"1500")
    put("response", b"\x00" + b"Thu, 01 Jan 2027 00:00:00 GMT")

    # stream: selector % 4 upstream, (selector >> 2) % 5 client API; then
    # the read size
    for up, name in [(0, "openai-chat-stream.sse"),
                     (2, "anthropic-stream.sse"),
                     (3, "gemini-stream.sse")]:
        for api in range(5):
            put("stream", bytes([up | api << 2 | 0x80, 7]) + fixture(name))

    for pattern, name in [("gpt-*", "gpt-4o"), ("claude-*-sonnet*", "claude-3-5-sonnet-latest"),
                          ("*", "anything"), ("gemini-2.5-flash", "gemini-2.5-flash"),
                          ("a*b*c", "aXbYbZc")]:
        put("glob", f"{pattern}\0{name}".encode())

    for text in ["500ms", "30s", "1m30s", "1.5h", "6m0s", "0.001ms"]:
        put("duration", text.encode())

    for path in sorted((ROOT / "manifests" / "examples").glob("*.yaml")) + \
            sorted((ROOT / "examples").rglob("*.yaml")):
        put("manifest", path.read_bytes())


if __name__ == "__main__":
    main()
