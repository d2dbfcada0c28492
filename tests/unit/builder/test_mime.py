"""Content-Type by path (factory spec §2.6.1) and a Content-Disposition that cannot be injected."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.http_headers import content_disposition
from services.builder.mime import content_type, extension
from services.shared.errors import InvalidArgument


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("metal-amd64-uki.efi", "application/efi"),
        ("metal-amd64.iso", "application/x-iso9660-image"),
        ("metal-amd64.raw.xz", "application/x-xz"),
        ("digital-ocean-amd64.raw.gz", "application/gzip"),
        ("gcp-amd64.raw.tar.gz", "application/gzip"),
        ("oracle-amd64.qcow2", "application/x-qemu-disk"),
        ("installer-amd64.tar", "application/x-tar"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("metal-amd64.raw.zst", "application/octet-stream"),
        ("metal-amd64.raw", "application/octet-stream"),
        ("vmware-amd64.ova", "application/octet-stream"),
        ("azure-amd64.vhd", "application/octet-stream"),
        ("kernel-amd64", "application/octet-stream"),
        ("cmdline-metal-amd64", "application/octet-stream"),
        ("initramfs-amd64.xz", "application/x-xz"),
        ("talosctl-windows-amd64.exe", "application/octet-stream"),
        ("METAL.ISO", "application/octet-stream"),
        ("dir.iso/file", "application/octet-stream"),
        ("", "application/octet-stream"),
        ("trailing.", "application/octet-stream"),
    ],
)
def test_content_type(path: str, expected: str) -> None:
    assert content_type(path) == expected


def test_extension_is_go_filepath_ext() -> None:
    assert extension("a/b.c/d") == ""
    assert extension("a.tar.gz") == ".gz"
    assert extension(".hidden") == ".hidden"
    assert extension("x.") == "."


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("custom-filename.iso", 'attachment; filename="custom-filename.iso"'),  # integration assertion
        ("metal-amd64.raw.xz", 'attachment; filename="metal-amd64.raw.xz"'),
        ("a b;c=d,e.iso", 'attachment; filename="a b;c=d,e.iso"'),
        ("50%.iso", 'attachment; filename="50%.iso"'),
        ('evil".iso', "attachment; filename=\"evil_.iso\"; filename*=UTF-8''evil%22.iso"),
        ("back\\slash.iso", "attachment; filename=\"back_slash.iso\"; filename*=UTF-8''back%5Cslash.iso"),
        ("tälos.iso", "attachment; filename=\"t_los.iso\"; filename*=UTF-8''t%C3%A4los.iso"),
        ("日本.iso", "attachment; filename=\"__.iso\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.iso"),
        (
            "x\"; filename*=UTF-8''evil.exe",
            "attachment; filename=\"x_; filename*=UTF-8''evil.exe\"; "
            "filename*=UTF-8''x%22%3B%20filename%2A%3DUTF-8%27%27evil.exe",
        ),
    ],
)
def test_content_disposition(filename: str, expected: str) -> None:
    assert content_disposition(filename) == expected


@pytest.mark.parametrize(
    "filename",
    [
        "",
        "a.iso\r\nSet-Cookie: x=y",
        "a.iso\nX: y",
        "a.iso\r",
        "nul\x00.iso",
        "tab\t.iso",
        "del\x7f.iso",
        "c1\x85.iso",
        "surrogate\ud800.iso",
    ],
)
def test_content_disposition_refuses(filename: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        content_disposition(filename)
    assert "\n" not in err.value.message and "\r" not in err.value.message


@given(st.text(min_size=1))
def test_content_disposition_is_one_safe_header_value(filename: str) -> None:
    try:
        value = content_disposition(filename)
    except InvalidArgument:
        return
    assert all(" " <= ch <= "~" for ch in value)  # printable ASCII: no CR/LF, nothing to smuggle
    # An RFC 6266 reader sees `attachment`, one `filename` and at most one `filename*`, and the name it
    # uses (`filename*` when present) is exactly the requested one.
    params = parse_disposition(value)
    assert set(params) <= {"filename", "filename*"} and "filename" in params
    if "filename*" in params:
        charset, _, encoded = params["filename*"].partition("''")
        assert charset == "UTF-8"
        assert unquote(encoded, errors="strict") == filename
    else:
        assert params["filename"] == filename


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf'; ({_TOKEN})=({_TOKEN}|"(?:[^"\\]|\\.)*")')


def parse_disposition(value: str) -> dict[str, str]:
    assert value.startswith("attachment")
    params: dict[str, str] = {}
    pos = len("attachment")
    while pos < len(value):
        m = _PARAM.match(value, pos)
        assert m is not None, value[pos:]
        name, raw = m.group(1), m.group(2)
        assert name not in params
        params[name] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
        pos = m.end()
    return params
