"""Regenerate the README figures from the shipped data.

``python docs/make_figures.py [--db demo_db/global] [--res 5]`` builds (or reuses) a global
database with the default model and draws ``docs/sahel_similar.png``: the Blue Marble, the
query cell in the Sahel, its most similar cells more than 2000 km away and the most similar
cells in Australia, South Asia and the Americas (the rows ``earthvec demo`` prints).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOP = 12  # far-away matches drawn; plus PER_REGION per region of app.cli.demo.ELSEWHERE
PER_REGION = 5
WIDTH = 900
QUERY_RGB = (255, 40, 40)
MATCH_RGB = (255, 230, 0)


def sahel_figure(db: Path, out: Path, data: Path) -> list[tuple[float, float, float, float]]:
    """Draw the Sahel similar-places figure; returns (lat, lon, km, score) of the dots drawn."""
    from PIL import Image, ImageDraw

    from app.cli.demo import FAR_KM, SAHEL, sahel_matches

    far = sahel_matches(db, far_top=TOP, per_region=PER_REGION)
    Image.MAX_IMAGE_PIXELS = None
    img = Image.open(data / "global" / "bmng.jpg").convert("RGB")
    img = img.resize((WIDTH, WIDTH // 2), Image.Resampling.LANCZOS)
    img = img.quantize(colors=120, method=Image.Quantize.MEDIANCUT)  # keeps the PNG small
    pal = img.getpalette() or []
    pal = pal + [0] * (768 - len(pal))
    ink = {QUERY_RGB: 250, MATCH_RGB: 251, (0, 0, 0): 252, (255, 255, 255): 253}
    for rgb, i in ink.items():
        pal[3 * i : 3 * i + 3] = list(rgb)
    img.putpalette(pal)
    draw = ImageDraw.Draw(img)

    def xy(lat: float, lon: float) -> tuple[float, float]:
        return (lon + 180.0) / 360.0 * WIDTH, (90.0 - lat) / 180.0 * (WIDTH // 2)

    for r in far.itertuples():
        x, y = xy(float(r.lat), float(r.lon))
        draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=ink[MATCH_RGB], outline=ink[(0, 0, 0)])
    x, y = xy(*SAHEL)
    draw.ellipse((x - 6, y - 6, x + 6, y + 6), fill=ink[QUERY_RGB], outline=ink[(255, 255, 255)], width=2)
    draw.rectangle((0, WIDTH // 2 - 22, WIDTH, WIDTH // 2), fill=ink[(0, 0, 0)])
    draw.text(
        (8, WIDTH // 2 - 18),
        f"red: query cell in the Sahel {SAHEL}; yellow: its {TOP} most similar cells > {FAR_KM} km "
        f"away and its {PER_REGION} most similar in Australia, South Asia, the Americas",
        fill=ink[(255, 255, 255)],
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    img.save(tmp, format="PNG", optimize=True)
    tmp.replace(out)
    return [(float(r.lat), float(r.lon), float(r.km), float(r.score)) for r in far.itertuples()]


def main() -> int:
    """Build or reuse the global database and write the figures."""
    from embedder.globe.build import build_global_db

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--db", default="demo_db/global", help="global database folder (built when missing)")
    p.add_argument("--res", type=int, default=5, help="H3 resolution of the global database")
    p.add_argument("--data", default=str(ROOT / "data"), help="shipped data folder")
    p.add_argument("--out", default=str(ROOT / "docs" / "sahel_similar.png"))
    a = p.parse_args()
    build_global_db(a.db, res=a.res, root=Path(a.data) / "global", progress=False)
    dots = sahel_figure(Path(a.db), Path(a.out), Path(a.data))
    print(f"wrote {a.out} ({Path(a.out).stat().st_size // 1024} KB, {len(dots)} matches)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
