"""`convzoo ...`: the command line. Flags are resolved here and passed on as plain values.

Importing this module needs no torch: each command imports what it uses when it runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from convzoo import __version__, catalogue, extras, registry
from convzoo.errors import ConvzooError
from convzoo.types import TASKS


def _store(args: argparse.Namespace) -> registry.Store:
    return registry.Store(args.store) if getattr(args, "store", None) else registry.Store()


def cmd_list(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    store = _store(args)
    table = Table(title=f"convzoo {__version__}: models (store: {', '.join(map(str, store.roots))})")
    for column in catalogue.COLUMNS:
        table.add_column(column, justify="right" if column in ("params", "MACs", "ONNX size") else "left")
    rows = catalogue.rows(store, args.task)
    for row in rows:
        cells = row.cells()
        if row.state == "broken":
            cells[-1] = "[red]broken[/red]"
        table.add_row(*cells)
    console = Console(width=200)
    console.print(table)
    for row in rows:  # each broken folder with its reason; the others above are usable
        if row.state == "broken":
            console.print(f"[red]broken:[/red] {row.reason}", markup=True, highlight=False)


def cmd_info(args: argparse.Namespace) -> None:
    entry = registry.get(args.name)
    print(json.dumps(entry.to_json() | {"labels": list(entry.labels[:20]) + (["..."] if len(entry.labels) > 20 else [])},
                     indent=2))
    stored = _store(args).find(args.name)
    if stored is None:
        print(f"\n{args.name} is not in the store: `convzoo train {args.name}` then `convzoo export {args.name}`.")
    else:
        print(f"\nIn the store at {stored.folder} (sha256 {stored.sha256})\n")
        print(stored.card_path.read_text() if stored.card_path.is_file() else "(no model card)")


def _thread_count(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 3 and 1 <= int(text) <= 256):
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a thread count: give a whole number from 1 to 256")
    return int(text)


def cmd_train(args: argparse.Namespace) -> None:
    from convzoo.training import train

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    entry = registry.get(args.name)
    changes = {key: value for key, value in (("epochs", args.epochs), ("batch_size", args.batch_size),
                                             ("lr", args.lr), ("seed", args.seed)) if value is not None}
    recipe = dataclasses.replace(entry.recipe, **changes)
    if args.loss_weights:
        recipe = dataclasses.replace(recipe, options={**recipe.options, "loss_weights": args.loss_weights,
                                                      "loss_network": "vgg16"})
    checkpoint = train(entry, recipe, data_dir=args.data_dir, out_dir=args.out, device=args.device,
                       resume=args.resume, max_steps=args.max_steps, download=args.download)
    print(f"checkpoint: {checkpoint}")


def cmd_export(args: argparse.Namespace) -> None:
    from convzoo.export import export_entry

    entry = registry.get(args.name)
    stored = export_entry(entry, checkpoint=args.checkpoint, weights=args.weights, store_root=args.out,
                          data_dir=args.data_dir, skip_parity=args.skip_parity)
    print(f"exported {stored.name} to {stored.folder} (sha256 {stored.sha256})")
    if args.triton_repo:
        from convzoo.export.triton import write_triton_repository

        write_triton_repository(registry.Store(args.out) if args.out else _store(args), Path(args.triton_repo),
                                names=[args.name])
        print(f"Triton model repository: {args.triton_repo}")


def cmd_eval(args: argparse.Namespace) -> None:
    from convzoo.evaluation import evaluate

    metrics = evaluate(args.name, store=_store(args), data_dir=args.data_dir, limit=args.limit, write=not args.no_write)
    print(json.dumps(metrics, indent=2))


def cmd_quantize(args: argparse.Namespace) -> None:
    from convzoo.export.quantize import quantize

    stored = quantize(args.name, store=_store(args), data_dir=args.data_dir, calibration_images=args.calibration,
                      require_speedup=not args.keep_slower)
    print(f"quantized {args.name} -> {stored.name} ({stored.folder})")


def cmd_bench(args: argparse.Namespace) -> None:
    from convzoo.benchmark import bench

    bench(args.name, store=_store(args), batch_sizes=args.batch_sizes, repeats=args.repeats,
          write_card=args.write_card)


def cmd_serve(args: argparse.Namespace) -> None:
    from convzoo.serving import serve

    # the ServeConfig is made inside serve, so that a setting it refuses is a JSON log line like any refusal
    serve(_store(args), host=args.host, port=args.port, models=tuple(args.models.split(",")) if args.models else None,
          threads=args.threads, spin=args.spin, max_batch=args.max_batch, batch_delay_ms=args.batch_delay_ms,
          token=args.token, cors_origins=tuple(args.cors.split(",")) if args.cors else None,
          log_format=args.log_format)


def cmd_demo(args: argparse.Namespace) -> None:
    from convzoo.demos import launch

    launch(store=_store(args), host=args.host, port=args.port, share=args.share)


def cmd_triton(args: argparse.Namespace) -> None:
    from convzoo.export.triton import write_triton_repository

    folders = write_triton_repository(_store(args), Path(args.out), names=args.names or None)
    print(f"Triton model repository at {args.out}: {', '.join(f.name for f in folders)}")


def cmd_doctor(args: argparse.Namespace) -> None:
    from rich.console import Console

    from convzoo.doctor import render, report

    result = report(_store(args))
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return
    console = Console(highlight=False, soft_wrap=True)
    for line in render(result):
        console.print(line)


def cmd_card(args: argparse.Namespace) -> None:
    from convzoo.card import render_card
    from convzoo.registry import atomic_write_text

    store = _store(args)
    for name in args.names or [m.name for m in store.models()]:
        stored = store.get(name)
        if registry.read_only(stored.folder.parent):  # the installed store: a copy with the new card, in the user's
            from convzoo.packaging import update_manifest

            stored = update_manifest(stored, {})
        else:
            atomic_write_text(stored.card_path, render_card(stored))  # the card is not in the sha256: no swap needed
        print(f"{name}: {stored.card_path}")


def cmd_push(args: argparse.Namespace) -> None:
    from convzoo.hub import push

    print(f"pushed {args.name} to {push(args.name, args.repo, store=_store(args), private=args.private)}")


def cmd_pull(args: argparse.Namespace) -> None:
    from convzoo.hub import pull

    stored = pull(args.repo, revision=args.revision, root=Path(args.store) if args.store else None)
    print(f"pulled {args.repo} as {stored.name} into {stored.folder} (sha256 {stored.sha256} verified)")


def cmd_space(args: argparse.Namespace) -> None:
    from convzoo.space import assemble

    files = assemble(Path(args.dir), replace=args.replace)
    size = sum((Path(args.dir) / f).stat().st_size for f in files)
    print(f"the Space's {len(files)} files ({size / 2**20:.1f} MiB) are in {args.dir}; publish them with\n"
          f"  hf upload ORG/NAME {args.dir} . --repo-type space")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convzoo", description="Classic CNNs: train, export to ONNX, evaluate, serve, demo.")
    p.add_argument("--version", action="version", version=f"convzoo {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func, help: str, store: bool = True) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        c.set_defaults(func=func)
        if store:
            c.add_argument("--store", help="model store folder (default: $CONVZOO_HOME, ~/.cache/convzoo, shipped models)")
        return c

    c = command("list", cmd_list, "list every model convzoo knows and what the store holds")
    c.add_argument("--task", choices=list(TASKS))
    c = command("info", cmd_info, "show one model's entry and its model card")
    c.add_argument("name")

    c = command("train", cmd_train, "train a model with its registry recipe", store=False)
    c.add_argument("name")
    c.add_argument("--epochs", type=int)
    c.add_argument("--batch-size", type=int)
    c.add_argument("--lr", type=float)
    c.add_argument("--seed", type=int)
    c.add_argument("--device", default="auto", help="auto (cuda when present), cpu or cuda")
    c.add_argument("--data-dir", help="folder with the data set (Fashion-MNIST: its idx files)")
    c.add_argument("--download", action="store_true", help="let torchvision download MNIST / CIFAR-10")
    c.add_argument("--out", default="runs", help="run folder root (default: runs/)")
    c.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    c.add_argument("--max-steps", type=int, help="stop after this many optimiser steps (smoke runs)")
    c.add_argument("--threads", type=_thread_count, metavar="1..256",
                   help="CPU threads for torch (1 for a run in the background: on a busy 2-core machine two "
                        "spinning threads under nice ran a LeNet-5 step 100x slower than one)")
    c.add_argument("--loss-weights", help="style models: ImageNet VGG-16 state-dict file for the perceptual loss")

    c = command("export", cmd_export, "export a trained model to ONNX in the store", store=False)
    c.add_argument("name")
    c.add_argument("--checkpoint", help="checkpoint file (default: runs/NAME/best.pt)")
    c.add_argument("--weights", help="ImageNet models: 'torchvision' for torchvision's weights, or a state-dict file")
    c.add_argument("--out", help="store folder to write into (default: $CONVZOO_HOME or ~/.cache/convzoo)")
    c.add_argument("--data-dir")
    c.add_argument("--skip-parity", action="store_true", help=argparse.SUPPRESS)
    c.add_argument("--triton-repo", help="also write a Triton model repository here")
    c.add_argument("--store", help=argparse.SUPPRESS)

    c = command("eval", cmd_eval, "evaluate an exported ONNX model on the real test set (onnxruntime, no torch)")
    c.add_argument("name")
    c.add_argument("--data-dir")
    c.add_argument("--limit", type=int, help="only the first N test images (smoke runs)")
    c.add_argument("--no-write", action="store_true", help="do not write the metrics into the manifest and card")

    c = command("quantize", cmd_quantize, "make the static INT8 (QDQ) twin NAME-int8 of an exported classifier")
    c.add_argument("name")
    c.add_argument("--data-dir")
    c.add_argument("--calibration", type=int, default=512, help="training images used to calibrate")
    c.add_argument("--keep-slower", action="store_true",
                   help="keep the twin even when it is not faster than FP32 at batch 1 or 64")

    c = command("bench", cmd_bench, "latency of PyTorch, ONNX Runtime FP32 and INT8, side by side in one run")
    c.add_argument("name")
    c.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 64])
    c.add_argument("--repeats", type=int, default=50)
    c.add_argument("--write-card", action="store_true", help="write the numbers into the model's manifest and card")

    c = command("serve", cmd_serve, "serve the store over HTTP (KServe v2 / Open Inference Protocol)")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=8000)
    c.add_argument("--models", help="comma-separated names (default: every model in the store)")
    c.add_argument("--threads", type=int, help="onnxruntime intra-op threads per session")
    c.add_argument("--spin", action="store_true", help="let onnxruntime's idle threads busy-wait for the next run "
                                                        "(lower latency on a machine with cores to spare)")
    c.add_argument("--max-batch", type=int, default=32)
    c.add_argument("--batch-delay-ms", type=float, default=2.0, help="dynamic batching window; 0 turns it off")
    c.add_argument("--token", help="bearer token required on every route except health (or $CONVZOO_TOKEN)")
    c.add_argument("--cors", help="comma-separated browser origins allowed to call the API "
                                  "(default: none; or $CONVZOO_CORS_ORIGINS)")
    c.add_argument("--log-format", choices=["json", "text"],
                   help="json: one JSON object a line, uvicorn's included (default); text: plain lines "
                        "(or $CONVZOO_LOG_FORMAT)")

    c = command("triton", cmd_triton, "write a Triton model repository from the store (no re-export)")
    c.add_argument("out", help="folder to write (one subfolder per model, with config.pbtxt)")
    c.add_argument("names", nargs="*", help="models (default: every whole model in the store)")

    c = command("doctor", cmd_doctor, "which onnxruntime build and providers are used here, and if not CUDA, why")
    c.add_argument("--json", action="store_true", help="the report as JSON")

    c = command("card", cmd_card, "rewrite model cards (README.md) from their manifests")
    c.add_argument("names", nargs="*", help="models (default: every whole model in the store)")

    c = command("push", cmd_push, "upload a stored model to a Hugging Face Hub model repository")
    c.add_argument("name")
    c.add_argument("--repo", required=True, help="ORG/NAME on the Hub (created when missing)")
    c.add_argument("--private", action="store_true", help="create the repository as private")

    c = command("pull", cmd_pull, "download a model from the Hugging Face Hub into the store, sha256 verified",
                store=False)
    c.add_argument("repo", help="ORG/NAME on the Hub")
    c.add_argument("--revision", help="branch, tag or commit (default: main)")
    c.add_argument("--store", help="store folder to install into (default: $CONVZOO_HOME or ~/.cache/convzoo)")

    c = command("space", cmd_space, "assemble the Hugging Face Space's files in a folder (from a source checkout)",
                store=False)
    c.add_argument("dir", help="folder to write: absent, empty, or a clone of the Space holding only .git")
    c.add_argument("--replace", action="store_true", help="first remove everything in the folder but .git")

    c = command("demo", cmd_demo, "launch the Gradio app")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=7860)
    c.add_argument("--share", action="store_true", help="ask Gradio for a public share link")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except ConvzooError as e:
        print(f"convzoo: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:  # an optional dependency: one sentence naming its extra, not a traceback
        if not (e.name and extras.optional(e.name)):
            raise
        print(f"convzoo: error: {extras.missing(e.name, args.command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("convzoo: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
