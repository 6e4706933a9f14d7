"""Secrets encrypted at rest: plaintext through the object layer, ciphertext in the store."""

from __future__ import annotations

import base64
import os

import pytest
import yaml

from raftkv.objects import BadRequest, EncryptionKey, Encryptor, InternalError, ObjectStore
from raftkv.objects.crypto import AESGCM_PREFIX

PASSWORD = "correct-horse-battery-staple"
KEY = "/registry/secrets/default/db"


def _secret(name="db", **extra):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "stringData": {"password": PASSWORD}, **extra}


def _key_file(tmp_path, name="key1", secret=None, identity_first=False):
    secret = secret or os.urandom(32)
    providers = [{"aesgcm": {"keys": [{"name": name, "secret": base64.b64encode(secret).decode()}]}},
                 {"identity": {}}]
    if identity_first:
        providers.reverse()
    path = tmp_path / "encryption.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"], "providers": providers}],
    }))
    return path


def test_secret_is_decrypted_through_the_layer_and_unreadable_in_the_store(kv, tmp_path):
    store = ObjectStore(kv, encryption_key=_key_file(tmp_path))
    created = store.create(_secret())
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    assert created["data"] == {"password": encoded}
    assert "stringData" not in created
    assert store.get("secrets", "db")["data"]["password"] == encoded
    assert store.list("secrets").items[0]["data"]["password"] == encoded
    raw = kv.get(KEY).value  # what etcdctl get would print
    assert raw.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert PASSWORD.encode() not in raw
    assert encoded.encode() not in raw
    assert b'"kind"' not in raw  # not even the JSON structure shows


def test_other_kinds_stay_plaintext(kv):
    store = ObjectStore(kv, encryption_key=Encryptor.generate())
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}})
    assert kv.get("/registry/configmaps/default/c").value.startswith(b"{")


def test_every_write_gets_a_fresh_nonce(kv):
    store = ObjectStore(kv, encryption_key=Encryptor.generate())
    store.create(_secret())
    first = kv.get(KEY).value
    store.patch("secrets", "db", {"metadata": {"labels": {"x": "y"}}})
    second = kv.get(KEY).value
    prefix = len(b"k8s:enc:aesgcm:v1:key1:")
    assert first[:prefix] == second[:prefix]
    assert first[prefix:prefix + 12] != second[prefix:prefix + 12]  # the nonces


def test_without_the_key_the_secret_cannot_be_read(kv):
    ObjectStore(kv, encryption_key=Encryptor.generate()).create(_secret())
    with pytest.raises(InternalError, match="encrypted and no encryption key is configured"):
        ObjectStore(kv).get("secrets", "db")
    with pytest.raises(InternalError, match="no key named 'key1'"):
        ObjectStore(kv, encryption_key=Encryptor([EncryptionKey("other", os.urandom(32))])).get("secrets", "db")
    with pytest.raises(InternalError, match="authentication failed"):
        ObjectStore(kv, encryption_key=Encryptor([EncryptionKey("key1", os.urandom(32))])).get("secrets", "db")


def test_ciphertext_is_bound_to_its_key(kv):
    enc = Encryptor.generate()
    store = ObjectStore(kv, encryption_key=enc)
    store.create(_secret("a"))
    kv.put("/registry/secrets/default/b", kv.get("/registry/secrets/default/a").value)  # copied by hand
    with pytest.raises(InternalError, match="authentication failed"):
        store.get("secrets", "b")


def test_key_rotation_reads_old_values(kv, tmp_path):
    old = EncryptionKey("old", os.urandom(32))
    ObjectStore(kv, encryption_key=Encryptor([old])).create(_secret())
    rotated = ObjectStore(kv, encryption_key=Encryptor([EncryptionKey("new", os.urandom(32)), old]))
    assert rotated.get("secrets", "db")["data"]["password"]
    rotated.patch("secrets", "db", {"metadata": {"annotations": {"rotated": "yes"}}})  # rewritten with the new key
    assert kv.get(KEY).value.startswith(AESGCM_PREFIX + b"new:")


def test_plaintext_written_before_encryption_stays_readable(kv):
    ObjectStore(kv).create(_secret())
    assert kv.get(KEY).value.startswith(b"{")
    store = ObjectStore(kv, encryption_key=Encryptor.generate())
    assert store.get("secrets", "db")["metadata"]["name"] == "db"


def test_identity_first_writes_plaintext_but_decrypts(kv, tmp_path):
    secret = os.urandom(32)
    ObjectStore(kv, encryption_key=_key_file(tmp_path, secret=secret)).create(_secret("enc"))
    store = ObjectStore(kv, encryption_key=_key_file(tmp_path, secret=secret, identity_first=True))
    store.create(_secret("plain"))
    assert kv.get("/registry/secrets/default/plain").value.startswith(b"{")
    assert store.get("secrets", "enc")["data"]


def test_key_file_formats(tmp_path):
    raw = os.urandom(32)
    bare = tmp_path / "bare.key"
    bare.write_text(base64.b64encode(raw).decode() + "\n")
    assert Encryptor.from_file(bare).keys == [EncryptionKey("key1", raw)]
    written = tmp_path / "written.yaml"
    Encryptor([EncryptionKey("k", raw)]).write_config(written)
    assert oct(written.stat().st_mode & 0o777) == "0o600"
    assert Encryptor.from_file(written).keys == [EncryptionKey("k", raw)]
    assert repr(Encryptor.from_file(written).keys[0]) == "EncryptionKey(name='k')"  # the secret never shows


@pytest.mark.parametrize("content, message", [
    ("not-base64!!", "not valid base64"),
    (base64.b64encode(b"short").decode(), "must be 16, 24 or 32 bytes"),
    ("kind: Something\n", "not an EncryptionConfiguration"),
    ("kind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{kms: {}}]}]\n",
     "unsupported encryption provider"),
    ("kind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{identity: {}}]}]\n",
     "lists no aesgcm key"),
])
def test_bad_key_files(tmp_path, content, message):
    path = tmp_path / "bad"
    path.write_text(content)
    with pytest.raises(BadRequest, match=message):
        Encryptor.from_file(path)


def test_raw_key_bytes(kv):
    store = ObjectStore(kv, encryption_key=os.urandom(16))
    store.create(_secret())
    assert kv.get(KEY).value.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert store.get("secret", "db")["type"] == "Opaque"


def test_a_client_without_the_key_can_still_cascade(kv):
    keyed = ObjectStore(kv, encryption_key=Encryptor.generate())
    keyed.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    keyed.create(dict(_secret(), metadata={"name": "db", "namespace": "team"}))
    owner = keyed.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner", "namespace": "team"}})
    keyed.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "dep", "namespace": "team", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}]}})
    keyless = ObjectStore(kv)
    keyless.delete("cm", "owner", "team")  # the dependents index skips what it cannot read
    assert keyless.list("cm", "team").items == []
    ns = keyless.delete("namespaces", "team")  # it cannot empty the namespace of the secret...
    assert ns["status"]["phase"] == "Terminating"
    assert kv.get("/registry/secrets/team/db") is not None
    keyed.collect_garbage()  # ...a client with the key finishes the job
    assert kv.get("/registry/secrets/team/db") is None
    assert kv.get("/registry/namespaces/team") is None
