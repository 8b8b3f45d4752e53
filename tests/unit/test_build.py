"""The image build tool's pure parts: content tags, the BuildKit command line, the OCI labels
it writes, and finding the host's Debian mirror for the offline base."""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from worker.errors import ImageError
from worker.images.__main__ import main as images_main
from worker.images.base import host_mirror
from worker.images.build import (
    OCI,
    Builder,
    BuildOptions,
    Built,
    Provenance,
    content_tag,
    oci_labels,
)
from worker.images.catalog import BASELINE, FLEET, IMAGES, image_name, images_for
from worker.images.docker_cli import DockerCli
from worker.languages import LANGUAGES
from worker.queue import WRITTEN_FOR


def tree(root: Path) -> Path:
    (root / "images/python").mkdir(parents=True)
    (root / "images/common").mkdir(parents=True)
    (root / "images/python/Dockerfile").write_text("FROM x\n")
    (root / "images/python/requirements-execution.txt").write_text("")
    (root / "images/common/passwd").write_text("root:x:0:0::/:/x\n")
    (root / "worker").mkdir()
    (root / "worker/app.py").write_text("print(1)\n")
    return root


def test_content_tag_follows_inputs_and_ignores_other_files(tmp_path: Path) -> None:
    root = tree(tmp_path)
    spec = IMAGES["python"]
    before = content_tag(spec, root, ["base1"])
    (root / "worker/app.py").write_text("print(2)\n")  # not an input of the python image
    assert content_tag(spec, root, ["base1"]) == before
    (root / "images/python/requirements-execution.txt").write_text("numpy\n")
    assert content_tag(spec, root, ["base1"]) != before


def test_content_tag_changes_with_the_base_image(tmp_path: Path) -> None:
    root = tree(tmp_path)
    assert content_tag(IMAGES["python"], root, ["a"]) != content_tag(IMAGES["python"], root, ["b"])


def builder(**options: object) -> Builder:
    b = Builder(DockerCli("/usr/bin/docker"), BuildOptions(**options))  # type: ignore[arg-type]
    b._base = "runner-base:bookworm"  # resolved already: no engine needed here
    return b


def test_build_command_uses_buildkit_targets_and_build_args(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PIP_CERT", raising=False)
    args = builder().build_command(
        IMAGES["python"], "runner-python:abc", "production", "sup:1", False
    )
    assert args[:3] == ["build", "-f", "images/python/Dockerfile"]
    assert args[args.index("--target") + 1] == "production"
    assert "runner-python:latest" in args
    build_args = {args[i + 1] for i, a in enumerate(args) if a == "--build-arg"}
    assert {
        "BASE_IMAGE=runner-base:bookworm",
        "SUPERVISOR_IMAGE=sup:1",
        "PYTHON_VERSION=3.11",
    } == build_args
    labels = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--label")
    assert labels[f"{OCI}title"] == "runner-python"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels[f"{OCI}created"])
    assert "--secret" not in args
    assert args[-1] == "."


def test_registry_cache_options_and_proxy_ca_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("cert")
    monkeypatch.setenv("PIP_CERT", str(ca))
    args = builder(cache_from="reg:5000/ci", cache_to="reg:5000/ci").build_command(
        IMAGES["python"], "runner-python:abc", "production", "sup:1", False
    )
    assert args[args.index("--cache-from") + 1] == "reg:5000/ci/runner-python:latest"
    assert "BUILDKIT_INLINE_CACHE=1" in args
    assert args[args.index("--secret") + 1] == f"id=ca-bundle,src={ca}"


def test_development_target_is_not_tagged_latest() -> None:
    args = builder(development=True).build_command(
        IMAGES["python"], "runner-python:dev-abc", "development", "sup:1", False
    )
    assert "runner-python:latest" not in args


ROOT = Path(__file__).resolve().parents[2]
LABELS = ("title", "description", "version", "source", "licenses", "vendor", "revision", "created")
EVERY = {**IMAGES, BASELINE.key: BASELINE, **FLEET}


def targets(spec_key: str) -> list[bool]:
    """Whether each target the build makes of ``spec_key`` is a development one."""
    spec = EVERY[spec_key]
    dockerfile = (ROOT / spec.dockerfile).read_text()
    has_development = re.search(r"^FROM \S+ AS development$", dockerfile, re.M) is not None
    # scripts/build-images --development makes the sandbox images'; of the fleet's images only
    # the worker's has one (runner-api's Dockerfile is the worker's, its development stage too)
    wanted = has_development and (spec.sandbox or bool(spec.development_description))
    return [False, True] if wanted else [False]


def test_every_image_and_target_gets_every_oci_label_filled_and_its_own_title() -> None:
    provenance = Provenance("0.1.0", "abc123def456", "unknown")
    titles: dict[str, tuple[str, bool]] = {}
    for key, spec in EVERY.items():
        name = image_name("runner", key)
        for development in targets(key):
            labels = oci_labels(spec, name, development, provenance, "2024-01-01T00:00:00Z")
            assert sorted(labels) == sorted(f"{OCI}{label}" for label in LABELS)
            assert all(value.strip() for value in labels.values()), (key, labels)
            title = labels[f"{OCI}title"]
            assert title not in titles, (key, development, titles.get(title))
            titles[title] = (key, development)
            if development:
                # as informative as production's: what the debugging variant adds, not only that
                assert spec.development_description, key
                assert labels[f"{OCI}description"] == (
                    f"Debugging variant of {name}: {spec.development_description}"
                )


def test_the_python_images_labels_say_what_its_dockerfile_said() -> None:
    provenance = Provenance("0.1.0", "abc123def456", "unknown")
    spec = IMAGES["python"]
    production = oci_labels(spec, "runner-python", False, provenance, "now")
    development = oci_labels(spec, "runner-python", True, provenance, "now")
    assert production[f"{OCI}description"] == (
        "Sandbox for Python submissions: Debian's python3.11 in a minimal FROM-scratch root"
    )
    assert development[f"{OCI}title"] == "runner-python-development"
    assert development[f"{OCI}description"] == (
        "Debugging variant of runner-python: full Debian python3.11, pip, strace"
    )
    assert production[f"{OCI}licenses"] == "MIT"
    assert production[f"{OCI}vendor"] == "code-runner-fleet"


def test_no_dockerfile_writes_an_oci_label_or_takes_the_builds_provenance() -> None:
    """The build writes them (worker/images/build.py): a Dockerfile that did would drift."""
    for dockerfile in sorted(ROOT.glob("images/*/Dockerfile")):
        text = dockerfile.read_text()
        assert "org.opencontainers" not in text, dockerfile
        assert not re.search(r"^ARG (VERSION|REVISION|CREATED|SOURCE)\b", text, re.M), dockerfile


def test_labels_leave_the_content_tag_alone_and_the_dockerfile_moves_it(tmp_path: Path) -> None:
    root = tree(tmp_path)
    spec = IMAGES["python"]
    before = content_tag(spec, root, ["base1"])
    # a new description (so new labels), a new date or revision: same sources, same tag
    assert content_tag(replace(spec, description="other"), root, ["base1"]) == before
    one = builder().build_command(spec, "runner-python:abc", "production", "sup:1", False)
    two = builder().build_command(spec, "runner-python:abc", "production", "sup:1", False)
    flags = [a for a in one if a != "--label" and not a.startswith(OCI)]
    assert flags == [a for a in two if a != "--label" and not a.startswith(OCI)]
    assert content_tag(spec, root, ["base1"]) == before
    (root / "images/python/Dockerfile").write_text("FROM y\n")
    assert content_tag(spec, root, ["base1"]) != before


def test_the_flags_command_gives_fleet_images_their_labels_and_build_args(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert images_main(["flags", "flower", "--name", "runner-flower"]) == 0
    lines = capsys.readouterr().out.splitlines()
    pairs = list(zip(lines[::2], lines[1::2], strict=True))
    labels = [v for k, v in pairs if k == "--label"]
    assert f"{OCI}title=runner-flower" in labels
    assert len(labels) == len(LABELS)
    # the Celery Flower runs is the one the fleet pins, not a second copy of the number
    assert [v for k, v in pairs if k == "--build-arg"] == [
        "FLOWER_VERSION=2.0.1",
        f"CELERY_VERSION={WRITTEN_FOR['celery']}",
    ]


def test_host_mirror_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\n"
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
    )
    assert host_mirror(tmp_path) == "http://mirror.example/debian"


def test_host_mirror_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64] http://mirror.example/debian bookworm main\n"
    )
    assert host_mirror(tmp_path) == "http://mirror.example/debian"


def test_no_mirror_configured_means_debootstraps_default(tmp_path: Path) -> None:
    assert host_mirror(tmp_path) is None


def test_one_line_sources_with_several_components(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "deb http://mirror.example/debian bookworm main contrib\n"
    )
    assert host_mirror(tmp_path) == "http://mirror.example/debian"


@pytest.mark.parametrize(
    ("argv", "env", "built"),
    [
        (["build"], {}, None),
        (["build"], {"RUNNER_LANGUAGES": "cpp,python"}, ["gcc", "native", "python"]),
        (["build", "javascript"], {"RUNNER_LANGUAGES": "cpp"}, ["javascript"]),
    ],
)
def test_the_build_tool_builds_the_deployments_languages_unless_told_which(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str], built: list[str] | None
) -> None:
    asked: list[list[str]] = []
    monkeypatch.delenv("RUNNER_LANGUAGES", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(Builder, "build_all", lambda self, keys: asked.append(list(keys)) or [])
    assert images_main(argv) == 0
    assert asked == [built or sorted(images_for(LANGUAGES))]


def test_development_builds_keep_the_supervisors_production_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It has no development stage: asking for one failed every --development build."""
    b = builder(development=True)
    b._base_id = "sha256:base"
    monkeypatch.setattr(DockerCli, "image_exists", lambda self, ref: True)  # all up to date
    monkeypatch.setattr(DockerCli, "image_size", lambda self, ref: 1)
    monkeypatch.setattr(DockerCli, "run", lambda self, *args: "")
    results = b.build_all(["python"])
    assert [r.ref.split(":")[1].startswith("dev-") for r in results] == [False, True]


def test_sandbox_images_build_side_by_side_and_one_failure_waits_for_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From scratch, most of a build waits on the mirror: builds overlap (at most ``jobs``),
    and a failed one is reported once every other build has ended, none left running."""
    b = builder(jobs=2)
    b._base_id = "sha256:base"
    running, most, ended = [0], [0], []
    lock = threading.Lock()
    both = threading.Barrier(2, timeout=5)

    def build(self: Builder, spec: object, supervisor_ref: str = "") -> Built:
        key = spec.key  # type: ignore[attr-defined]
        if not supervisor_ref:
            return Built(key, f"sup:{key}", 1, 0.0, True)
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        both.wait()  # only passes when two builds run at once
        with lock:
            running[0] -= 1
            ended.append(key)
        if key == "lua":
            raise ImageError("building lua failed")
        return Built(key, f"{key}:1", 1, 0.0, False)

    monkeypatch.setattr(Builder, "build", build)
    with pytest.raises(ImageError, match="lua"):
        b.build_all(["lua", "ruby", "php", "native"])
    assert most[0] == 2
    assert len(ended) == 4
