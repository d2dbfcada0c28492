"""The blocking client and the `imagefactory` command, against the fake factory in a thread."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.demo_release.signing import load_cosign_key
from imagefactory_client import Client, NotFound
from imagefactory_client.cli import main, rate
from imagefactory_client.progress import ProgressBar, human
from imagefactory_client.transfer import part_path
from tests.support.ports import free_port
from tests.unit.client.fake_factory import ISO, SCHEMATIC, SCHEMATIC_ID, FakeFactory, serve_in_thread

ISO_SHA = hashlib.sha256(ISO).hexdigest()


@pytest.fixture
def fake() -> FakeFactory:
    return FakeFactory()


@pytest.fixture
def url(fake: FakeFactory) -> Iterator[str]:
    with serve_in_thread(fake.app()) as base:
        yield base


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_sync_client_delegates_to_the_async_one(url: str, tmp_path: Path) -> None:
    with Client(url) as client:
        assert client.create_schematic(SCHEMATIC) == SCHEMATIC_ID
        assert client.get_schematic(SCHEMATIC_ID) == SCHEMATIC.decode()
        assert client.versions() == ["v1.11.5", "v1.12.1"]
        assert client.versions(broken=True) == ["v1.11.5"]
        assert client.extensions("v1.12.1")[0].name == "siderolabs/gvisor"
        assert client.overlays("v1.12.1")[0].name == "rpi_generic"
        assert client.talosctl("v1.12.1")[0].endswith("/talosctl/v1.12.1/talosctl-linux-amd64")
        assert client.download_talosctl("v1.12.1", "talosctl-linux-amd64", tmp_path / "t").size > 0
        assert client.asset_info(SCHEMATIC_ID, "v1.12.1", "metal-amd64.iso").size == len(ISO)
        assert client.download(SCHEMATIC_ID, "v1.12.1", "metal-amd64.iso", tmp_path / "a.iso").sha256 == ISO_SHA
        assert client.asset_url(SCHEMATIC_ID, "1.12.1", "kernel-amd64").endswith("/v1.12.1/kernel-amd64")
        assert client.pxe_script(SCHEMATIC_ID, "v1.12.1", "metal-amd64").startswith("#!ipxe")
        assert client.cosign_public_key().startswith(b"-----BEGIN PUBLIC KEY-----")
        assert client.fetch("versions").startswith(b"[")
        assert client.ready()
        with pytest.raises(NotFound):
            client.get_schematic("0" * 64)
        with pytest.raises(Exception, match="internal server error"):
            client.secureboot_certificate()


def test_cli_schematic_versions_and_catalogs(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schematic = tmp_path / "schematic.yaml"
    schematic.write_bytes(SCHEMATIC)
    assert run(capsys, "--url", url, "schematic", "create", str(schematic)) == (0, SCHEMATIC_ID + "\n", "")
    assert run(capsys, "--url", url, "schematic", "get", SCHEMATIC_ID) == (0, SCHEMATIC.decode(), "")
    assert run(capsys, "--url", url, "versions") == (0, "v1.11.5\nv1.12.1\n", "")
    assert run(capsys, "--url", url, "versions", "--broken") == (0, "v1.11.5\n", "")
    code, out, _ = run(capsys, "--url", url, "extensions", "1.12.1")
    assert code == 0 and out.startswith("siderolabs/gvisor\tghcr.io/siderolabs/gvisor:20231214@sha256:")
    code, out, _ = run(capsys, "--url", url, "extensions", "1.12.1", "--json")
    assert code == 0 and '"author": "Sidero Labs"' in out
    code, out, _ = run(capsys, "--url", url, "overlays", "v1.12.1")
    assert code == 0 and out.startswith("rpi_generic\t")
    code, out, _ = run(capsys, "--url", url, "pxe", SCHEMATIC_ID, "v1.12.1", "metal-amd64")
    assert code == 0 and out.startswith("#!ipxe")
    code, out, _ = run(capsys, "--url", url, "talosctl", "v1.12.1")
    assert code == 0 and out.strip().endswith("talosctl-linux-amd64")
    out_file = tmp_path / "talosctl"
    assert run(capsys, "--url", url, "talosctl", "v1.12.1", "talosctl-linux-amd64", "-o", str(out_file), "-q")[0] == 0
    assert out_file.read_bytes().startswith(b"\x7fELF")


def test_cli_url_from_environment(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMAGEFACTORY_URL", url)
    assert run(capsys, "versions")[0] == 0


def test_cli_exit_codes(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--url", url, "schematic", "get", "0" * 64) == (
        1,
        "",
        "imagefactory: schematic not found (HTTP 404)\n",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("something:\n")
    code, _, err = run(capsys, "--url", url, "schematic", "create", str(bad))
    assert code == 1 and err.startswith("imagefactory: yaml: construct errors:") and err.count("\n") == 1
    code, _, err = run(capsys, "--url", f"http://127.0.0.1:{free_port()}", "versions")
    assert code == 1 and err.startswith("imagefactory: GET http://127.0.0.1:")
    code, _, err = run(capsys, "--url", url, "schematic", "create", str(tmp_path / "missing.yaml"))
    assert code == 2 and "No such file or directory" in err
    for argv in (["bogus"], ["download", SCHEMATIC_ID], ["download", "a", "b", "c", "--limit-rate", "fast"], []):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
    capsys.readouterr()


def test_cli_download_progress_and_resume(
    url: str, fake: FakeFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "metal-amd64.iso"
    fake.cut_after = [100_000, 100_000]
    code, _, err = run(
        capsys, "--url", url, "download", SCHEMATIC_ID, "v1.12.1", "metal-amd64.iso", "-o", str(dest), "--retries", "1"
    )
    assert code == 1 and "connection lost mid-body" in err
    assert part_path(dest).stat().st_size >= 100_000 and not dest.exists()

    code, out, err = run(capsys, "--url", url, "download", SCHEMATIC_ID, "v1.12.1", "metal-amd64.iso", "-o", str(dest))
    assert (code, out) == (0, f"{ISO_SHA}  {dest}\n")
    assert "metal-amd64.iso: resuming at" in err
    assert "100% 256.0 KiB/256.0 KiB" in err
    assert dest.read_bytes() == ISO


def test_cli_export_and_verify(url: str, fake: FakeFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = load_cosign_key(tmp_path / "k" / "cosign.pem", generate=True)
    fake.public_key = key.public_key_pem()
    bundle = tmp_path / "bundle"
    argv = ["--url", url, "export", str(bundle), "-s", SCHEMATIC_ID, "-v", "v1.12.1", "-a", "kernel-amd64", "-q"]
    assert run(capsys, *argv) == (0, f"{bundle}: 6 files, 1 assets, 0 signed\n", "")
    code, out, err = run(capsys, "verify", str(bundle))
    assert code == 0 and out == f"{bundle}: 6 files verified, 0 signed by the factory key\n"
    assert "warning: image/" in err and "no signature in the bundle" in err
    code, _, err = run(capsys, "verify", str(bundle), "--require-signatures")
    assert code == 1 and err == f"imagefactory: image/{SCHEMATIC_ID}/v1.12.1/kernel-amd64: not signed\n"
    (bundle / "versions").write_text("[]")
    code, _, err = run(capsys, "verify", str(bundle), "--key", str(tmp_path / "k" / "cosign.pem.pub"))
    assert code == 1 and err.startswith("imagefactory: versions: size 2, manifest says")
    code, _, err = run(capsys, "--url", url, "export", str(bundle), "-s", "x", "-v", "v1", "-a", "kernel-amd64")
    assert (code, err) == (2, "imagefactory: export: invalid schematic ID 'x'\n")


def test_rate_and_progress_rendering() -> None:
    assert rate("500k") == 512_000 and rate("2M") == 2 * 1024**2 and rate("1000") == 1000
    assert human(512) == "512 B" and human(1536) == "1.5 KiB" and human(3 * 1024**3) == "3.0 GiB"

    class Sink:
        def __init__(self) -> None:
            self.text = ""

        def write(self, s: str) -> int:
            self.text += s
            return len(s)

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    sink = Sink()
    bar = ProgressBar("x.iso", sink)  # type: ignore[arg-type]
    for done in range(0, 101, 5):
        bar(done, 100)
    bar.close()
    lines = sink.text.splitlines()
    assert len(lines) == 11 and lines[-1].startswith("x.iso [########################] 100% 100 B/100 B")
    unknown = Sink()
    ProgressBar("y", unknown)(10, None)  # type: ignore[arg-type]
    assert unknown.text == "y: resuming at 10 B\n"  # and no decile lines without a total


def test_terminal_progress_redraws_one_line() -> None:
    import io

    stream = io.StringIO()
    bar = ProgressBar("k", stream, tty=True)
    bar(0, 2048)
    bar(2048, 2048)
    bar.close()
    text = stream.getvalue()
    assert text.startswith("\rk [------------------------]   0% 0 B/2.0 KiB")
    assert "\rk [########################] 100% 2.0 KiB/2.0 KiB" in text and text.endswith("\n")
    assert text.count("\n") == 1
