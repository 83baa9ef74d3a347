"""Seed corpora for the pw-cache fuzz targets, from the proxywhirl 0.3.3 fixtures.

Usage: python3 fuzz/make_seeds.py [OUT]   (default OUT: fuzz/seeds, which is not committed).
Writes OUT/<target>/<sha1 of the content>, the way libFuzzer names corpus files.
"""
import glob, hashlib, json, os, struct, sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
FX = f'{ROOT}/tests/fixtures/proxywhirl-0.3.3'
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "fuzz", "seeds")  # OUT/<target>/

def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), 'wb') as f:
        f.write(data)

def lines(path):
    with open(path, 'rb') as f:
        return [l for l in f.read().split(b'\n')]

shard_lines = [l.rstrip(b'\r') for p in sorted(glob.glob(f'{FX}/jsonl_l2/shard_*.jsonl')) for l in lines(p)]
export_lines = [l for l in lines(f'{FX}/export/export.jsonl') if l]

# jsonl_line: every shard line (damaged ones included), export lines, and timestamp variants.
for l in shard_lines + export_lines:
    put('jsonl_line', l)
good = next(l for l in shard_lines if b'password_encrypted' in l)
obj = json.loads(good)
for ts in ['2024-10-04T07:56:39Z', '2024-10-04 07:56:39.6+00:00', '2024-10-04T07:56:39.6507712+00:00',
           '2024-10-04T07:56:39', '2024-10-04T07:56:39.65-05:30', '2024-10-04T07:56', '2024-10-04T07:56:39+0500']:
    o = dict(obj, fetch_time=ts)
    put('jsonl_line', json.dumps(o))
for bad in [b'', b'42', b'null', b'{}', b'[]', b'"x"', b'{"key": 1}', good[: len(good) // 2], good + b'\r',
            b'\xff\xfe' + good, good.replace(b'"password_encrypted": "', b'"password_encrypted": "zz'),
            good.replace(b'"username_encrypted": "67', b'"username_encrypted": "68')]:
    put('jsonl_line', bad)

# warm_*: the fixtures' warm inputs, the export and shards as JSONL, arrays of export lines.
for p in glob.glob(f'{FX}/warm/*.json'):
    put('warm_json', open(p, 'rb').read())
for p in glob.glob(f'{FX}/warm/*.jsonl'):
    put('warm_jsonl', open(p, 'rb').read())
for p in glob.glob(f'{FX}/warm/*.csv'):
    data = open(p, 'rb').read()
    put('warm_csv', data)
    put('warm_csv', data.replace(b'\n', b'\r\n'))
put('warm_json', b'[' + b','.join(export_lines[:5]) + b']')
put('warm_json', b'[' + b','.join(l for l in shard_lines[:6] if l.startswith(b'{') and l.endswith(b'}')) + b']')
put('warm_json', b'\xef\xbb\xbf[{"proxy_url": "http://u%40:p%3A@h.example:8080"}, null, 1, "s", [], {"proxy_url": true}]')
put('warm_jsonl', b'\n'.join(export_lines[:8]))
put('warm_jsonl', b'\r\n'.join(shard_lines[:12]))
put('warm_jsonl', b'\xef\xbb\xbf{"proxy_url": "socks5h://[::1]:1080", "username_encrypted": "674141", "password": "***"}\r\n\xff\n')
put('warm_csv', 'proxy_url,username_encrypted,password_encrypted\r\nhttp://a:b@h.example:1,,\r\n"socks4a://x.example:1","67","zz"\n')

# token: fixture tokens (text and hex), the Fernet spec's tokens, the fixed valid tokens.
tokens = set()
for l in shard_lines:
    try:
        o = json.loads(l)
    except Exception:
        continue
    if isinstance(o, dict):
        for k in ('username_encrypted', 'password_encrypted'):
            if isinstance(o.get(k), str) and o[k]:
                tokens.add(o[k])
for h in sorted(tokens)[:40]:
    put('token', h)
    try:
        put('token', bytes.fromhex(h))
    except ValueError:
        pass
for name in ('generate.json', 'verify.json', 'invalid.json'):
    for case in json.load(open(f'{ROOT}/tests/fixtures/fernet-spec/{name}')):
        put('token', case['token'])
VALID = [
    'gAAAAABlU_EAAAECAwQFBgcICQoLDA0OD5f7UwwY-1lMrRv5lK_y8GdXN-VDaZOrYe0Va1LM8n-hx1gbJdgJYRm3n3E9RiGUcA==',
    'gAAAAABlU_EAEBESExQVFhcYGRobHB0eH4hklz5uGSvrNKr8czIu6OnKVHKUtz6dtr0_6FeUp5iDl57deVZZOaNY3qNY5IFTmw==',
    'gAAAAABfXhAAICEiIyQlJicoKSorLC0uL9FRpz8WREZh0mDZLxdJF9xGnV3CtTSN9siHkQkbfkslTS-1TcVst1OzxiOY8FjQlQ==',
    'gAAAAAAAAAAAMDEyMzQ1Njc4OTo7PD0-P0_swvarC0rXZfgCPFiU-BaBv9UROZ4bNsTMATEp2Xdgtjp1UesoL9T5HRLFISnhaq4by31GFMSVKOyHU_9vD34=',
    'gAAAAQAAAAAAQEFCQ0RFRkdISUpLTE1OT9xX-L8_rL6mte6dc7z0Tf_V-ZGCP4PXHwztMm5MwMtdSo-04imJd4PHkwFw_rWwVX9Dm9m6zugRwp6sUqwd9aomiHNxYsi3meZzI46oSxq7',
    'gAAAAABlU_EBUFFSU1RVVldYWVpbXF1eXyVMc1YdrezoQ7NwEF5ixcO0uiksVkM8l4Zx8pzsFGe5Ea8JUgJ8PKSjYTHvc4_Sfg==',
]
for t in VALID:
    put('token', t)
    put('token', t.encode().hex())
    put('token', t.encode().hex().upper())
for t in ['', 'gAAA', '%%%%', 'zz', 'abc']:
    put('token', t)

# token_mutation: each valid token unchanged, and one edit of each kind on each.
for i in range(len(VALID)):
    put('token_mutation', bytes([i]))
    for op in range(8):
        put('token_mutation', bytes([i, 40 + op, op, 0x41]))

# timestamp: every timestamp string of the fixtures, the variants, some floats.
stamps = set()
for l in shard_lines + export_lines:
    try:
        o = json.loads(l)
    except Exception:
        continue
    if isinstance(o, dict):
        for k in ('fetch_time', 'last_accessed', 'expires_at', 'last_health_check', 'next_check_time'):
            if isinstance(o.get(k), str):
                stamps.add(o[k])
for s in sorted(stamps)[:60]:
    put('timestamp', s)
for s in ['2026-11-20T23:00:00Z', '2026-11-20 23:00:00+00:00', '2026-11-20t23:00:00z', '2026-11-20T23:00:00.1+00:00',
          '2026-11-20T23:00:00.12+00:00', '2026-11-20T23:00:00.123+00:00', '2026-11-20T23:00:00.1234+00:00',
          '2026-11-20T23:00:00.12345+00:00', '2026-11-20T23:00:00.123456+00:00', '2026-11-20T23:00:00.1234567+00:00',
          '2026-11-20T23:00:00.123456789+00:00', '2026-11-20T23:00:00', '2026-11-20T23:00', '2026-11-20T23:00:00+0530',
          '2026-11-20T23:00:00-05', '2026-11-20T23:00:00+05:30:15', '0001-01-01T00:00:00-05:30', '9999-12-31T23:59:59.999999+23:59',
          '2026-11-20T23:00:00+24:00', '2026-02-30T00:00:00+00:00', ' 2026-11-20T23:00:00+00:00 ']:
    put('timestamp', s)
for x in [0.0, 1.5, -1.5, 1732143600.123456, 253402300799.999999, -62135596800.0, 0.9999995, float('nan'), float('inf'), 1e300, -0.0]:
    put('timestamp', struct.pack('<d', x))
