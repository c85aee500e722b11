"""The program the /verification page shows; tests run exactly what the page serves."""

from __future__ import annotations

CHECK_PROGRAM = """import hashlib, json, os, sys, urllib.request

import jwt  # pip install "pyjwt[crypto]" rfc8785
import rfc8785

SITE = "{site}"
slug = sys.argv[1]
token = os.environ.get("DISPATCH_TOKEN")  # optional: check a dispatch you bought


def get(path, token=None):
    request = urllib.request.Request(SITE + path)
    if token:
        request.add_header("Authorization", f"Bearer {{token}}")
    with urllib.request.urlopen(request) as response:
        return json.load(response)


# 1. The manifest is signed by one of the site's published keys.
signed = get(f"/api/v1/articles/{{slug}}/manifest")
keys = jwt.PyJWKSet.from_dict(get("/.well-known/dispatch-keys.json"))
kid = jwt.get_unverified_header(signed["jws"])["kid"]
payload = jwt.api_jws.decode(signed["jws"], keys[kid].key, algorithms=["EdDSA"])
manifest = json.loads(payload)
assert manifest == signed["manifest"], "the manifest is not the signed one"
print("signature valid, key", kid)
print(json.dumps(manifest, indent=2))

# 2. The text and the report you bought hash to the signed values.
if token:
    article = get(f"/api/v1/articles/{{slug}}", token)
    text_hash = hashlib.sha256(article["body"].encode("utf-8")).hexdigest()
    report_hash = hashlib.sha256(rfc8785.dumps(article["verification"])).hexdigest()
    assert text_hash == manifest["text_sha256"], "the text is not the signed one"
    assert report_hash == manifest["report_sha256"], "the report is not the signed one"
    print("text and report match the manifest")
"""


def check_program(site: str) -> str:
    return CHECK_PROGRAM.format(site=site.rstrip("/"))
