"""`ganforge texture analyze IMAGE|DIR... [--json] [--compare IMAGE2]`: texture descriptors of
image files (co-occurrence, local binary patterns, CNN Gram energy) and their similarity to a
reference image."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="describe textures: co-occurrence, local binary patterns, CNN Gram statistics",
        description="Print texture descriptors of each image: GLCM properties at each pixel "
                    "distance (mean over 4 directions, 32 grey levels), LBP entropy at three radii "
                    "and the random-CNN activation energy per scale. With --compare, also the "
                    "texture similarity of each image to a reference, exp(-distance) where the "
                    "distance is the mean of an LBP, a GLCM and a Gram distance, each in [0, 1].")
    parser.add_argument("inputs", metavar="IMAGE", nargs="+",
                        help="image files or folders (their images, not sub-folders)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document instead of tables")
    parser.add_argument("--compare", default=None, metavar="IMAGE2",
                        help="also print the similarity of each input to this image, and its components")


def run(args: argparse.Namespace) -> int:
    from ..inference.images import list_inputs

    files = list_inputs(args.inputs)
    reference = describe_file(args.compare) if args.compare else None
    entries = [analyze_file(path, reference) for path in files]
    if args.json:
        document = {"images": entries}
        if args.compare:
            document["reference"] = str(args.compare)
        print(json.dumps(document, indent=2))
    else:
        print("\n\n".join(table(entry, args.compare) for entry in entries))
    return 0


def describe_file(path) -> dict:
    """describe() of an image file; an unreadable or too small image is a DataError naming it."""
    from ..errors import ConfigError, DataError
    from ..inference.images import read_image_file
    from ..texture.analysis import describe

    pixels = read_image_file(path).pixels
    try:
        return describe(pixels)
    except ConfigError as error:
        raise DataError(f"{path}: {error}") from None


def analyze_file(path: Path, reference: dict | None) -> dict:
    """The JSON-ready report of one file, with its comparison to `reference` when given."""
    from ..texture.analysis import compare, json_ready

    description = describe_file(path)
    entry = {"file": str(path), **json_ready(description)}
    if reference is not None:
        entry["compare"] = compare(description, reference)
    return entry


def table(entry: dict, reference: str | None) -> str:
    """A compact text table of one report entry."""
    glcm, lbp, gram = entry["glcm"], entry["lbp"], entry["gram"]
    label = 30
    heading = f"GLCM ({glcm['levels']} levels, mean of {len(glcm['angles'])} angles)"
    lines = [f"{entry['file']}  {entry['width']}x{entry['height']}, "
             f"{'gray' if entry['channels'] == 1 else 'RGB'}",
             f"  {heading:<{label}}" + "".join(f"{'d=' + str(d):>10}" for d in glcm["distances"])]
    for name, values in glcm["properties"].items():
        lines.append(f"    {name:<{label - 2}}" + "".join(f"{v:>10.4g}" for v in values))
    lines.append(f"  {'LBP entropy (bits)':<{label}}" + "".join(
        f"{f'P{p},R{r:g}':>10}" for p, r in lbp["scales"]))
    lines.append(f"  {'':<{label}}" + "".join(f"{v:>10.4g}" for v in lbp["entropy"]))
    lines.append(f"  {'Gram energy per CNN scale':<{label}}" + "".join(
        f"{'1' if k == 0 else '1/' + str(2 ** k):>10}" for k in range(len(gram["energy"]))))
    lines.append(f"  {'':<{label}}" + "".join(f"{v:>10.4g}" for v in gram["energy"]))
    if "compare" in entry:
        c = entry["compare"]
        lines.append(f"  {'similarity to ' + str(reference):<{label}}{c['similarity']:>10.4f}  "
                     f"(distance {c['distance']:.4f} = mean of lbp {c['lbp']:.4f}, "
                     f"glcm {c['glcm']:.4f}, gram {c['gram']:.4f})")
    return "\n".join(lines)


SUBCOMMANDS = {"analyze": (add_parser, run)}
