"""The sandbox images, against real Docker: each runs its language's hello-world as the
non-root user with no network and a read-only root, has no setuid/setgid file, carries the
OCI labels, and passes its own HEALTHCHECK command."""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path

import docker
import pytest

from tests.conftest import RUN_ID, TEST_LABEL
from worker.images.build import Provenance
from worker.images.catalog import IMAGES, SUPERVISOR, image_name, image_ref
from worker.images.docker_cli import DockerCli
from worker.languages import LANGUAGES

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]


def run(
    client: docker.DockerClient,
    image: str,
    entrypoint: list[str],
    *,
    volumes: dict[str, dict[str, str]] | None = None,
    tmpfs: dict[str, str] | None = None,
    working_dir: str | None = None,
    environment: list[str] | None = None,
) -> str:
    """Run as the image's own (non-root) user, no network, read-only root; return stdout."""
    out = client.containers.run(
        image,
        entrypoint=entrypoint,
        command=[],
        working_dir=working_dir,
        environment=environment or [],
        network_mode="none",
        read_only=True,
        remove=True,
        labels={TEST_LABEL: RUN_ID},
        volumes=volumes or {},
        tmpfs=tmpfs or {},
        stderr=True,
    )
    return out.decode()


def test_images_run_as_a_non_root_numeric_user(docker_client, images) -> None:
    for ref in images.values():
        user = docker_client.images.get(ref).attrs["Config"]["User"]
        uid = user.split(":")[0]
        assert uid.isdigit() and int(uid) != 0, (ref, user)


def test_python_hello_world(docker_client, images) -> None:
    out = run(docker_client, images["python"], ["/usr/bin/python3", "-c", "print('hello')"])
    assert out == "hello\n"


def test_python_imports_the_standard_library_without_compiling(docker_client, images) -> None:
    """The build's own gate (images/python/check-stdlib.py: every stdlib module imports, none is
    compiled at import time), run again in the finished image as its non-root user."""
    gate = (ROOT / "images/python/check-stdlib.py").read_text()
    out = run(docker_client, images["python"], ["/usr/bin/python3", "-c", gate])
    imported, _, rest = out.strip().splitlines()[-1].partition(" modules imported, ")
    assert rest == "0 failed, 0 compiled from source", out
    assert int(imported) > 250


def test_javascript_hello_world(docker_client, images) -> None:
    out = run(docker_client, images["javascript"], ["/usr/bin/node", "-e", "console.log('hello')"])
    assert out == "hello\n"


C_HELLO = (
    '#include <stdio.h>\n#include <math.h>\nint main(){printf("hello %.0f\\n", sqrt(16.0));}\n'
)
CPP_HELLO = (
    "#include <iostream>\n#include <vector>\n"
    'int main(){std::vector<int> v{1,2}; std::cout << "hello " << v.size() << "\\n";}\n'
)


@pytest.mark.parametrize(
    ("compiler", "name", "source"),
    [("/usr/bin/gcc", "hello.c", C_HELLO), ("/usr/bin/g++", "hello.cpp", CPP_HELLO)],
)
def test_compiler_image_builds_what_the_run_image_runs(
    docker_client, images, tmp_path: Path, compiler: str, name: str, source: str
) -> None:
    (tmp_path / name).write_text(source)
    tmp_path.chmod(0o777)
    volumes = {str(tmp_path): {"bind": "/w", "mode": "rw"}}
    flags = ["-O2", "-o", "/w/prog", f"/w/{name}"] + (["-lm"] if name.endswith(".c") else [])
    run(
        docker_client,
        images["gcc"],
        [compiler, *flags],
        volumes=volumes,
        tmpfs={"/tmp": "rw,exec,size=64m,mode=1777"},
    )
    out = run(
        docker_client,
        images["native"],
        ["/w/prog"],
        volumes={str(tmp_path): {"bind": "/w", "mode": "ro"}},
    )
    assert out == ("hello 4\n" if name.endswith(".c") else "hello 2\n")


# A program of each language compiled as the judge compiles it (its compile argv, in its
# compile image), then run in its run image by its run argv: C#'s assemblies, Pascal's static
# binary, Haskell's packages linked statically into a binary the native image runs
COMPILED_HELLO = {
    "csharp": (
        "main.cs",
        "class P { static void Main() {\n"
        '    System.Console.WriteLine("hello " + System.Numerics.BigInteger.Pow(2, 64));\n} }\n',
        "hello 18446744073709551616\n",
    ),
    "pascal": (
        "main.pas",
        "uses SysUtils;\nbegin\n  writeln('hello ', IntToStr(6 * 7))\nend.\n",
        "hello 42\n",
    ),
    "haskell": (
        "main.hs",
        "import qualified Data.Map as M\n\nmain :: IO ()\n"
        'main = putStrLn ("hello " ++ show (M.size (M.fromList [(1 :: Int, ()), (2, ())])))\n',
        "hello 2\n",
    ),
    "go": (
        "main.go",
        'package main\n\nimport (\n\t"fmt"\n\t"math/big"\n)\n\n'
        'func main() { fmt.Println("hello", new(big.Int).Lsh(big.NewInt(1), 64)) }\n',
        "hello 18446744073709551616\n",
    ),
    "rust": (
        "main.rs",
        "use std::collections::BTreeMap;\n\nfn main() {\n"
        "    let m: BTreeMap<u32, ()> = [(1, ()), (2, ())].into_iter().collect();\n"
        '    println!("hello {}", m.len());\n}\n',
        "hello 2\n",
    ),
}


@pytest.mark.parametrize("language", sorted(COMPILED_HELLO))
def test_a_compile_image_builds_what_its_run_image_runs(
    docker_client, images, tmp_path: Path, language: str
) -> None:
    lang = LANGUAGES[language]
    assert lang.compile is not None
    name, source, expected = COMPILED_HELLO[language]
    (tmp_path / name).write_text(source)
    tmp_path.chmod(0o777)
    run(
        docker_client,
        images[lang.compile.image],
        list(lang.compile.command([name], ())),
        volumes={str(tmp_path): {"bind": "/w", "mode": "rw"}},
        tmpfs={"/tmp": "rw,exec,size=256m,mode=1777"},
        # the job's environment, HOME and TMPDIR its work dir, as a compile step has them
        environment=[*lang.job_env, "HOME=/w", "TMPDIR=/w"],
        working_dir="/w",
    )
    ro = {str(tmp_path): {"bind": "/w", "mode": "ro"}}
    out = run(
        docker_client, images[lang.image], list(lang.command(name)), volumes=ro, working_dir="/w"
    )
    assert out == expected


def test_native_run_image_runs_a_dynamic_program(docker_client, images) -> None:
    assert run(docker_client, images["native"], ["/opt/runner/hello"]) == "hello\n"


def test_no_setuid_or_setgid_file_in_any_image(docker_client, images) -> None:
    for ref in images.values():
        container = docker_client.containers.create(ref, labels={TEST_LABEL: RUN_ID})
        try:
            stream = b"".join(container.export())
        finally:
            container.remove(force=True)
        with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
            special = [m.name for m in tar if m.mode & (stat.S_ISUID | stat.S_ISGID)]
        assert special == [], (ref, special)


OCI_LABELS = ("title", "description", "version", "source", "licenses", "vendor", "revision")


def test_oci_labels_are_filled_by_the_build(docker_client, images, settings) -> None:
    """Every image, and every development target built from this checkout
    (scripts/build-images --development), carries every OCI label the build writes, each
    titled its own."""
    refs = {**images, SUPERVISOR.key: image_ref(settings.image_prefix, SUPERVISOR.key)}
    # development targets are built on demand only: check those built from this revision (a
    # machine keeps those of older checkouts, labelled as their code did)
    revision = Provenance.of(Path(__file__).resolve().parents[2]).revision
    for key in images:
        name = image_name(settings.image_prefix, key)
        for image in docker_client.images.list(name=name):
            labels = image.attrs["Config"]["Labels"] or {}
            if labels.get("org.opencontainers.image.revision") == revision:
                refs.update({tag: tag for tag in image.tags if tag.startswith(f"{name}:dev-")})
    titles: dict[str, str] = {}  # title -> the image and target it names (one or more tags)
    for key, ref in refs.items():
        labels = docker_client.images.get(ref).attrs["Config"]["Labels"] or {}
        for label in (*OCI_LABELS, "created"):
            assert labels.get(f"org.opencontainers.image.{label}", "").strip(), (ref, label)
        assert labels["org.opencontainers.image.created"] != "unknown"
        assert labels["io.runner.language"]
        title = labels["org.opencontainers.image.title"]
        named = ref.split(":")[0] + (":dev" if ":dev-" in ref else "")
        assert titles.setdefault(title, named) == named, (ref, title, titles[title])
        if key in IMAGES:  # not a development target's tag
            assert title == image_name(settings.image_prefix, key)
            assert labels["org.opencontainers.image.description"] == IMAGES[key].description
        else:
            assert title.endswith("-development"), ref
            assert labels["org.opencontainers.image.description"].startswith("Debugging variant")


def test_healthcheck_runs_a_real_program(docker_client, images) -> None:
    for ref in images.values():
        test = docker_client.images.get(ref).attrs["Config"]["Healthcheck"]["Test"]
        assert test[0] == "CMD"
        assert "--selftest" in test
        run(docker_client, ref, test[1:])  # raises ContainerError on a non-zero exit


def test_entrypoint_is_exec_form_supervisor(docker_client, images) -> None:
    for ref in images.values():
        config = docker_client.images.get(ref).attrs["Config"]
        assert config["Entrypoint"] == ["/opt/runner/supervisor"]


def test_python_image_is_small(docker_client, images) -> None:
    size = docker_client.images.get(images["python"]).attrs["Size"]
    assert size <= 40_000_000


HELLO = {
    "lua": ["/usr/bin/lua5.4", "-e", "print('hello')"],
    "ruby": ["/usr/bin/ruby", "-e", "puts 'hello'"],
    "php": ["/usr/bin/php", "-r", "echo 'hello', PHP_EOL;"],
    "java": ["/usr/lib/jvm/java/bin/java", "-XX:-UsePerfData", "-jar", "/opt/runner/hello.jar"],
    "pypy": ["/usr/bin/pypy3", "-c", "print('hello')"],
}


@pytest.mark.parametrize("key", sorted(HELLO))
def test_a_runtime_says_hello_and_nothing_else(docker_client, images, key: str) -> None:
    """stderr included: Debian's PHP warns at every start when it lacks its zone data."""
    assert run(docker_client, images[key], HELLO[key]) == "hello\n"


JAVA_SOURCE = (
    "import java.util.random.RandomGenerator;\n"
    "public class Solution { public static void main(String[] a) {\n"
    '  System.out.println("hello " + RandomGenerator.of("Xoshiro256PlusPlus").nextInt(1));\n} }\n'
)


def test_javac_image_builds_a_jar_the_java_image_runs(docker_client, images, tmp_path) -> None:
    """The compile step's tool (any file name, the class with main in the manifest), then the
    jar in the run image's runtime, which has the modules the compiler was limited to."""
    (tmp_path / "Main.java").write_text(JAVA_SOURCE)
    tmp_path.chmod(0o777)
    tool = ["/usr/bin/java", "-XX:-UsePerfData", "-cp", "/opt/runner/java/judge-compile.jar"]
    modules = "java.base,jdk.random,jdk.unsupported"
    compile_ = [*tool, "JudgeCompile", "/w/main.jar", modules, "/w/Main.java"]
    rw = {str(tmp_path): {"bind": "/w", "mode": "rw"}}
    run(docker_client, images["javac"], compile_, volumes=rw)
    java = ["/usr/lib/jvm/java/bin/java", "-XX:-UsePerfData", "-jar", "/w/main.jar"]
    ro = {str(tmp_path): {"bind": "/w", "mode": "ro"}}
    assert run(docker_client, images["java"], java, volumes=ro) == "hello 0\n"


def test_ruby_has_its_standard_library_and_the_gems_debian_bundles(docker_client, images) -> None:
    source = (
        'require "prime"; require "matrix"; require "json"; require "bigdecimal"; '
        'require "set"; p [Prime.first(3), Matrix[[1, 2], [3, 4]].det, defined?(DidYouMean)]'
    )
    out = run(docker_client, images["ruby"], ["/usr/bin/ruby", "-e", source])
    assert out == '[[2, 3, 5], -2, "constant"]\n'


def test_pypy_imports_what_the_build_probe_cannot(docker_client, images) -> None:
    """The build's chroot has no /dev or /proc: multiprocessing reads /dev/urandom as it loads,
    and the garbage collector sizes its nursery from /proc/cpuinfo (else it warns on stderr)."""
    source = (
        "import multiprocessing, secrets, sqlite3, hashlib, sys; "
        "print(multiprocessing.cpu_count() > 0, len(secrets.token_hex(4)), "
        "sqlite3.connect(':memory:').execute('select 6*7').fetchone()[0], "
        "hashlib.sha3_256(b'').hexdigest()[:4], sys.implementation.name)"
    )
    out = run(docker_client, images["pypy"], ["/usr/bin/pypy3", "-c", source])
    assert out == "True 8 42 a7ff pypy\n"


def test_php_loads_the_extensions_debian_enables(docker_client, images) -> None:
    source = "echo implode(' ', array_map('strtolower', get_loaded_extensions())), PHP_EOL;"
    loaded = set(run(docker_client, images["php"], ["/usr/bin/php", "-r", source]).split())
    assert {"ctype", "iconv", "json", "posix", "tokenizer", "pcntl"} <= loaded
    assert {"sysvshm", "sysvsem", "sysvmsg", "shmop"} <= loaded


def test_runtime_images_are_smaller_than_the_official_ones(docker_client, images) -> None:
    """Ours as it takes on disk, theirs compressed (as Docker Hub lists it): a floor of theirs.
    A runtime whose one library is about as large as their whole pull (PyPy's libpypy, 59 MB)
    is compared like for like: ours compressed as a pull would be."""
    for key, spec in IMAGES.items():
        if spec.official_slim is not None and key in images:
            size_mb = docker_client.images.get(images[key]).attrs["Size"] / 1e6
            name, official_mb = spec.official_slim
            if size_mb >= official_mb:
                size_mb = DockerCli.pick().compressed_size(images[key]) / 1e6
            assert size_mb < official_mb, (key, size_mb, name, official_mb)
