"""`edgeprobe perturbations` and `edgeprobe perturb`: the catalogue, a replay of one perturbation, a contact sheet.

A failure the agent reports names the perturbation, severity and seed; the
same three on the same frame give the same pixels here, so the frame the
model failed on can be looked at.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    app.command("perturbations")(perturbations)
    app.command("perturb")(perturb)


def _fmt(row: tuple[float, ...]) -> str:
    return ", ".join(f"{v:.4g}" for v in row)


def catalogue() -> dict[str, Any]:
    """The listing's data: every registry row, then the fixed metamorphic transforms."""
    from edgeprobe.harness import perturbations as P

    families = ("noise", "blur", "weather", "digital", "camera", "temporal", "geometric")
    imagenet = {n: i for i, n in enumerate(P.IMAGENET_C)}

    def family_rank(name: str) -> int:  # a plugin's own family sorts after the built-in ones
        family = P.get(name).family
        return families.index(family) if family in families else len(families)

    order = sorted(P.names(), key=lambda n: (n not in imagenet, family_rank(n), imagenet.get(n, 0), n))
    rows = []
    for name in order:
        p = P.get(name)
        rows.append({
            "name": p.name, "family": p.family, "temporal": p.temporal, "source": p.source,
            "origin": P.REGISTRY.entry(name).origin,
            "description": p.description, "params": list(p.param_names),
            "identity": list(p.identity), "severities": {str(i + 1): list(r) for i, r in enumerate(p.table)},
            "monotone": p.monotone, "notes": p.notes,
        })
    geometric = [{"name": g.name, "description": g.description,
                  "inverse": (inv.name if (inv := g.inverse()) is not None else None),
                  "maps": ["points", "boxes", "masks", "orientation"]} for g in P.GEOMETRIC.values()]
    return {"perturbations": rows, "geometric": geometric}


def perturbations(
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List every perturbation: family, parameters at severities 1..5, source; then the metamorphic transforms."""
    data = catalogue()
    if json_output:
        print(json.dumps(data))
        return
    from edgeprobe.cli.console import console, print_table

    def family(r: dict[str, Any]) -> str:
        return (r["family"] + (" (ImageNet-C)" if r["source"].startswith("ImageNet-C") else "")
                + (f" ({r['origin']})" if r["origin"] != "builtin" else ""))

    print_table("Perturbations: severity 0..5, integers are the ImageNet-C levels, fractions interpolate",
                ("name", "family", "parameters", "at severity 1 | 2 | 3 | 4 | 5"),
                ((r["name"], family(r), ", ".join(r["params"]),
                  " | ".join(_fmt(tuple(r["severities"][str(i)])) for i in range(1, 6)))
                 for r in data["perturbations"]))
    print_table("Metamorphic transforms (GEOMETRIC: no severity; flips and quarter turns exist only here, "
                "rotate/translate/scale/crop_resize also above with a severity)", ("name", "what", "inverse"),
                ((g["name"], g["description"], g["inverse"] or "-") for g in data["geometric"]), fold=False)
    console.print("[bold]Where edgeprobe differs from the reference on purpose[/] (imagecorruptions 1.1.2):")
    for r in data["perturbations"]:
        if r["notes"] and r["source"].startswith("ImageNet-C"):
            console.print(f"  {r['name']}: {r['notes']}", highlight=False)


def read_image(path: Path) -> Any:
    """A uint8 frame from a file: greyscale stays HxW, colour is BGR, alpha is dropped."""
    import cv2
    import numpy as np

    from edgeprobe.harness.perturbations import PerturbationError

    if path.is_dir():
        raise PerturbationError(f"image {path} is a folder; give the path of one PNG or JPEG frame in it")
    if not path.is_file():
        raise PerturbationError(f"image {path} does not exist; give the path of a PNG or JPEG frame")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise PerturbationError(f"cannot read {path} as an image; give a PNG, JPEG or other file OpenCV can decode")
    if img.dtype != np.uint8:
        raise PerturbationError(f"{path} has {img.dtype} pixels; perturbations take 8-bit frames, convert it first")
    if img.ndim == 3 and img.shape[2] == 4:
        img = np.ascontiguousarray(img[:, :, :3])
    return img


def check_output(path: Path) -> None:
    """Refuse an output path that cannot take an image, before any pixels are computed."""
    import cv2

    from edgeprobe.harness.perturbations import PerturbationError

    if path.is_dir():
        raise PerturbationError(f"-o {path} is a folder; name a file in it, e.g. {path / 'out.png'}")
    if not cv2.haveImageWriter(str(path)):
        raise PerturbationError(f"cannot write {path}: no image format is named {path.suffix or '(no extension)'!r}; "
                                "use a .png (bit-exact) or .jpg path")
    for p in path.parents:
        if p.exists() and not p.is_dir():
            raise PerturbationError(f"cannot write {path}: {p} is a file, not a folder; pick another -o")


def _write(path: Path, image: Any, jpeg_quality: int = 95) -> None:
    import cv2

    from edgeprobe.harness.perturbations import PerturbationError

    check_output(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PerturbationError(f"cannot create folder {path.parent} ({exc.strerror or exc}); pick another -o") \
            from None
    # Only JPEG takes a quality; handing it to the PNG writer makes OpenCV print a warning on every write.
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if path.suffix.lower() in (".jpg", ".jpeg", ".jpe") else []
    try:
        ok = cv2.imwrite(str(path), image, params)
    except cv2.error:
        ok = False
    if not ok:
        raise PerturbationError(f"cannot write {path}; use a .png (bit-exact) or .jpg path in a writable folder")


def perturb(
    image: Annotated[Path, typer.Argument(help="The frame to perturb (PNG, JPEG, ...).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the result (.png is bit-exact).")],
    name: Annotated[str | None, typer.Option("--name", "-n", help="Perturbation or metamorphic transform.")] = None,
    severity: Annotated[float, typer.Option("--severity", "-s", help="0..5, fractions allowed.")] = 3.0,
    seed: Annotated[int, typer.Option("--seed", help="The seed reported with the failure.", min=0)] = 0,
    grid: Annotated[bool, typer.Option("--grid", help="Contact sheet: every perturbation at severities 1..5.")] = False,
    thumb: Annotated[int, typer.Option("--thumb", help="Contact sheet cell width in pixels.", min=16)] = 120,
) -> None:
    """Replay one perturbation bit-exactly (--name/--severity/--seed), or draw a contact sheet (--grid)."""
    from edgeprobe.harness import perturbations as P

    frame = read_image(image)
    check_output(output)
    if grid:
        if name is not None:
            raise P.PerturbationError("--grid draws every perturbation; leave out --name")
        # A contact sheet is for looking at: a .jpg one is written at quality 75 to stay small.
        _write(output, contact_sheet(frame, seed=seed, width=thumb), jpeg_quality=75)
        print(f"wrote {output}")
        return
    if name is None:
        raise P.PerturbationError("give --name (see `edgeprobe perturbations`) or --grid")
    if name in P.GEOMETRIC and name not in P.REGISTRY:
        out = P.GEOMETRIC[name].apply(frame)
    else:
        out = P.apply(name, frame, severity, seed)
    _write(output, out)
    digest = hashlib.sha256(out.tobytes()).hexdigest()
    print(f"wrote {output}: {name} severity {severity:g} seed {seed}, pixels sha256 {digest}")


def contact_sheet(frame: Any, seed: int = 0, width: int = 120) -> Any:
    """One row per frame-wise perturbation: its name, then severities 1..5 (column 0 is the clean frame)."""
    import cv2
    import numpy as np

    from edgeprobe.harness import perturbations as P

    img = frame if frame.ndim == 3 and frame.shape[2] == 3 else cv2.cvtColor(
        frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2BGR)
    h, w = img.shape[:2]
    cell_w = max(16, width)
    cell_h = max(8, round(h * cell_w / w))
    label_w, head_h, pad = 150, 22, 2
    names = [r["name"] for r in catalogue()["perturbations"] if not r["temporal"]]
    # Perturb a working copy near twice the cell size: what is shown is what a small frame would get.
    work_w = min(w, cell_w * 2)
    work = cv2.resize(img, (work_w, max(1, round(h * work_w / w))), interpolation=cv2.INTER_AREA)
    sheet = np.full((head_h + len(names) * (cell_h + pad), label_w + 6 * (cell_w + pad), 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for col, title in enumerate(["clean", "1", "2", "3", "4", "5"]):
        cv2.putText(sheet, title, (label_w + col * (cell_w + pad) + 4, 16), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for row, name in enumerate(names):
        y = head_h + row * (cell_h + pad)
        cv2.putText(sheet, name, (4, y + cell_h // 2 + 4), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        for col in range(6):
            out = work if col == 0 else P.apply(name, work, col, seed)
            x = label_w + col * (cell_w + pad)
            sheet[y:y + cell_h, x:x + cell_w] = cv2.resize(out, (cell_w, cell_h), interpolation=cv2.INTER_AREA)
    return sheet
