#!/usr/bin/env python3
"""Writes the seed corpora (fuzz/corpus/{envelope,pipeline}/) from the fixtures and a few
variants. Run from fuzz/: python3 seeds/make_seeds.py"""
import json, os, pathlib

root = pathlib.Path(__file__).resolve().parent.parent
fixtures = sorted((root.parent / "knolyx-webhook-core" / "fixtures").glob("*.json"))
bodies = {f.stem: f.read_bytes() for f in fixtures}
user = {"id": 1, "name": "Ana", "email": "ana@example.com"}
course = {"id": 2, "name": "Rust"}
data = {"user": user, "course": course}
def env(**kw):
    return json.dumps(kw, separators=(",", ":")).encode()
bodies.update({
    "data_as_string": env(id="s-1", type="COURSE_STARTED", data=json.dumps(data)),
    "unknown_type": env(id="u-1", type="QUIZ_PASSED", data={"score": 1.5, "x": [1, {"y": None}]}),
    "unknown_string_data": env(id="u-2", type="NEW", data="hello"),
    "data_before_type": b'{"data":{"user":{"id":1,"name":"n","email":"e"},"course":{"id":2,"name":"c"}},"type":"COURSE_COMPLETED","id":"d-1"}',
    "deep_127": b'{"id":"deep","type":"X","data":' + b"[" * 127 + b"]" * 127 + b"}",
    "deep_129": b'{"id":"deep","type":"X","data":' + b"[" * 129 + b"]" * 129 + b"}",
    "deep_unknown_field": b'{"id":"deep","type":"PING","extra":' + b"[" * 200 + b"]" * 200 + b"}",
    "ping_no_data": b'{"id":"p","type":"PING"}',
    "ping_null": b'{"id":"p","type":"PING","data":null}',
    "escaped_id": b'{"id":"a\\u0062c","type":"COURSE_STARTED","data":{"user":{"id":1,"name":"n","email":"e"},"course":{"id":2,"name":"c"}}}',
    "invalid_data": b'{"id":"x1","type":"COURSE_COMPLETED","data":{"user":"nobody"}}',
    "bundle_big_id": b'{"id":"b","type":"BUNDLE_PAYMENT_RECEIVED","data":{"user":{"id":9223372036854775807,"name":"n","email":"e"},"bundle":{"id":-1,"slug":"s","name":"b"}}}',
    "array_data": b'{"id":"a","type":"COURSE_STARTED","data":[{"id":1,"name":"n","email":"e"},{"id":2,"name":"c"}]}',
})
out = root / "corpus"
(out / "envelope").mkdir(parents=True, exist_ok=True)
(out / "pipeline").mkdir(parents=True, exist_ok=True)
for name, body in bodies.items():
    (out / "envelope" / f"seed-{name}").write_bytes(body)
# pipeline prefix: method, config, header count, header kinds…, step count, settle bytes…
prefixes = {
    "twice_200": bytes([0, 0, 1, 0, 1, 0, 0]),          # PUT, token, two deliveries, 200 each
    "fail_then_ok": bytes([1, 0, 1, 3, 2, 2, 0, 0]),     # POST, old token, 500 then 200, 200
    "hold_then_dup": bytes([0, 0, 1, 0, 1, 4, 0]),      # held: the retransmission is in flight
    "abandon": bytes([0, 0, 1, 0, 1, 6, 0]),
    "lenient_forward": bytes([0, 3, 1, 0, 2, 0, 0, 0]),
    "small_limit_cl": bytes([0, 4, 2, 0, 7, 0, 0, 0, 0, 100, 0, 0]),
    "two_tokens": bytes([0, 0, 2, 0, 3, 0, 0]),
    "wrong_method": bytes([2, 0, 1, 0, 0, 0]),
}
for pname, prefix in prefixes.items():
    for name, body in bodies.items():
        if pname != "twice_200" and name not in ("course_completed", "ping", "invalid_data", "data_as_string", "unknown_type"):
            continue
        (out / "pipeline" / f"seed-{pname}-{name}").write_bytes(prefix + body)
print(len(os.listdir(out / "envelope")), len(os.listdir(out / "pipeline")))
