"""``python -m worker.images build``: build every image (what ``scripts/build-images`` runs).

``python -m worker.images flags KEY``: the ``docker build`` flags of an image built elsewhere
(scripts/fleet-images): its OCI labels and build args, one a line."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from worker.errors import RunnerError
from worker.images.build import (
    ROOT,
    Builder,
    BuildOptions,
    Provenance,
    label_flags,
    now,
    oci_labels,
)
from worker.images.catalog import BASELINE, FLEET, IMAGES, image_name, images_for
from worker.images.docker_cli import DockerCli
from worker.images.registry import Registry, push
from worker.logs import configure_logging
from worker.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build-images", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build images with BuildKit, skipping up-to-date ones")
    sandboxes = [key for key, spec in IMAGES.items() if spec.sandbox]
    build.add_argument(
        "images",
        nargs="*",
        help=f"some of {', '.join(sandboxes)} (default: those of RUNNER_LANGUAGES, all when "
        "it is empty)",
    )
    build.add_argument("--development", action="store_true", help="build the development targets")
    build.add_argument(
        "--cache-from",
        default="",
        metavar="REGISTRY/PREFIX",
        help="pull build cache from images pushed there earlier",
    )
    build.add_argument(
        "--cache-to",
        default="",
        metavar="REGISTRY/PREFIX",
        help="push each built image, with inline build cache, there",
    )
    build.add_argument(
        "--push",
        action="store_true",
        help="push the images by content tag (and as latest) to the registry "
        "(RUNNER_REGISTRY; credentials: RUNNER_REGISTRY_USER and _PASSWORD_FILE)",
    )
    build.add_argument(
        "--registry",
        default="",
        metavar="HOST:PORT[/PATH]",
        help="the registry --push pushes to (default RUNNER_REGISTRY)",
    )
    build.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=BuildOptions.jobs,
        metavar="N",
        help=f"images built at once (default {BuildOptions.jobs})",
    )
    build.add_argument("-v", "--verbose", action="store_true", help="show BuildKit's progress")
    every = {**IMAGES, BASELINE.key: BASELINE, **FLEET}
    pushing = sub.add_parser(
        "push", help="push images built elsewhere (NAME:CONTENT-TAG) to the registry, as latest too"
    )
    pushing.add_argument("refs", nargs="+", metavar="NAME:TAG")
    pushing.add_argument("--registry", default="", help="default RUNNER_REGISTRY")
    flags = sub.add_parser("flags", help="print an image's --label and --build-arg flags")
    flags.add_argument("key", choices=sorted(every))
    flags.add_argument("--name", default="", help="the image's name (default PREFIX-KEY)")
    flags.add_argument("--development", action="store_true", help="of its development target")
    args = parser.parse_args(argv)
    if args.command == "flags":
        spec = every[args.key]
        name = args.name or image_name(Settings.from_env().image_prefix, spec.key)
        labels = oci_labels(spec, name, args.development, Provenance.of(ROOT), now())
        build_args = [f for k, v in spec.args for f in ("--build-arg", f"{k}={v}")]
        print("\n".join([*label_flags(labels), *build_args]))
        return 0
    if args.command == "push":
        try:
            settings = Settings.from_env()
            for remote in push_built(settings, args.registry, DockerCli.pick(), args.refs):
                print(f"pushed {remote}")
        except RunnerError as exc:
            print(f"build-images: {exc}", file=sys.stderr)
            return 1
        return 0
    unknown = sorted(set(args.images) - set(sandboxes))
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, not {args.jobs}")
    if unknown:
        parser.error(f"unknown image {', '.join(unknown)}; choose from {', '.join(sandboxes)}")
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_format, settings.log_level)
        if args.push and not (args.registry or settings.registry):
            parser.error("--push needs a registry: --registry HOST:PORT or RUNNER_REGISTRY")
        if args.push:  # refused before anything is built, not after
            push_built(settings, args.registry, DockerCli.pick(settings.docker_cli), [])
        builder = Builder(
            DockerCli.pick(settings.docker_cli),
            BuildOptions(
                prefix=settings.image_prefix,
                base_image=settings.base_image,
                development=args.development,
                cache_from=args.cache_from,
                cache_to=args.cache_to,
                verbose=args.verbose,
                jobs=args.jobs,
            ),
        )
        results = builder.build_all(args.images or images_for(settings.chosen_languages()))
        pushed: list[str] = []
        if args.push:
            pushed = push_built(settings, args.registry, builder.cli, [b.ref for b in results])
    except RunnerError as exc:
        print(f"build-images: {exc}", file=sys.stderr)
        return 1
    print(f"{'IMAGE':<34} {'SIZE':>9}  STATUS")
    for built in results:
        status = "up to date" if built.cached else f"built in {built.seconds:.1f}s"
        print(f"{built.ref:<34} {built.size_mb:>6.1f} MB  {status}")
    for remote in pushed:
        print(f"pushed {remote}")
    return 0


def push_built(settings: Settings, where: str, cli: DockerCli, refs: list[str]) -> list[str]:
    """Push ``refs`` to ``where`` (or RUNNER_REGISTRY), with its configured credentials."""
    if where:
        settings = dataclasses.replace(settings, registry=where)  # checked as the setting is
    registry = Registry.of(settings)
    if registry is None:
        raise RunnerError("--push without a registry: name one, or set RUNNER_REGISTRY")
    return push(cli, registry, refs)


if __name__ == "__main__":
    sys.exit(main())
