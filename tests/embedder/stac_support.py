"""A static STAC catalog around the real files, and a local HTTP server with Range support.

The catalog (written with pystac) describes the real Landsat-8 scene and the four BigEarthNet
S2/S1 pairs with their real footprints and acquisition times; Landsat's ``eo:cloud_cover`` is
the share of pixels its real BQA band flags as cloud. Asset files are copies of the real files
beside the catalog (Landsat as COGs with 128 px tiles and no overviews: a lossless re-encoding), so the folder
can be served over HTTP. The server answers single and multi-range requests (``206``, with
``multipart/byteranges``), logs every request, and can act as a tiny STAC API (landing page,
``/search`` filtering by collections, bbox, datetime and ``eo:cloud_cover``) for pystac-client.
"""

from __future__ import annotations

import glob
import json
import shutil
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pystac
import rasterio
import rasterio.shutil
from rasterio.warp import transform_bounds

from embedder.dates import in_window, parse_datetime_window, parse_time
from embedder.masks import mask_rules
from embedder.sensors import get_sensor
from tests.conftest import DATA

S2_KEYS = {  # earth-search style asset keys (common names), mapped through band_aliases
    "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
    "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "nir09", "B11": "swir16", "B12": "swir22",
}  # fmt: skip
TIFF = pystac.MediaType.GEOTIFF
COG = pystac.MediaType.COG


def _footprint(path: Path) -> tuple[list[float], dict]:
    with rasterio.open(path) as src:
        w, s, e, n = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
    ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
    return [w, s, e, n], {"type": "Polygon", "coordinates": [ring]}


def _item(item_id: str, files: dict[str, Path], when: datetime, props: dict | None = None) -> pystac.Item:
    bbox, geom = _footprint(next(iter(files.values())))
    item = pystac.Item(item_id, geom, bbox, when, dict(props or {}))
    for key, path in files.items():
        item.add_asset(key, pystac.Asset(str(path), media_type=COG if "landsat" in str(path) else TIFF))
    return item


def landsat_cloud_cover() -> float:
    """Percent of the Landsat scene's pixels that its real BQA band flags as cloud."""
    with rasterio.open(DATA / "landsat8" / "l8_BQA.tif") as src:
        q = src.read(1).astype(np.float64)
    return round(100.0 * float(mask_rules(get_sensor("landsat8-l1"))["BQA"].flags(q).mean()), 2)


def write_catalog(root: Path) -> Path:
    """Write ``root/catalog.json`` with collections landsat-8-l1, sentinel-2-l2a, sentinel-1-grd."""
    assets = root / "assets"
    cat = pystac.Catalog(
        "earthvec-test", "Real files from data/, described with their real footprints and dates"
    )
    l8 = pystac.Collection(
        "landsat-8-l1",
        "Landsat-8 L1",
        pystac.Extent.from_dict(
            {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}}
        ),
    )
    files = {}
    for f in sorted(glob.glob(str(DATA / "landsat8" / "l8_B*.tif"))):
        key = Path(f).stem.split("_")[1]  # B1 ... B11, BQA
        dst = assets / "landsat" / Path(f).name
        dst.parent.mkdir(parents=True, exist_ok=True)
        rasterio.shutil.copy(f, dst, driver="COG", BLOCKSIZE=128, COMPRESS="DEFLATE", OVERVIEWS="NONE")
        files[key] = dst
    when = parse_time("2015-08-04T16:19:21", "iso")
    l8.add_item(_item("LC80200392015216LGN00", files, when, {"eo:cloud_cover": landsat_cloud_cover()}))
    s2 = pystac.Collection("sentinel-2-l2a", "Sentinel-2 L2A (BigEarthNet patches)", l8.extent.clone())
    s1 = pystac.Collection("sentinel-1-grd", "Sentinel-1 GRD (BigEarthNet patches)", l8.extent.clone())
    for coll, sub in ((s2, "S2"), (s1, "S1")):
        for folder in sorted(glob.glob(str(DATA / "bigearthnet_s1s2" / sub / "*"))):
            name = Path(folder).name
            dst = assets / sub / name
            shutil.copytree(folder, dst)
            files = {}
            for f in sorted(dst.glob("*.tif")):
                band = f.stem.rsplit("_", 1)[1]
                files[S2_KEYS.get(band, band.lower())] = f
            meta = json.loads(next(dst.glob("*metadata.json")).read_text())
            stamp = meta.get("acquisition_date") or meta["acquisition_time"]
            coll.add_item(_item(name, files, parse_time(stamp.replace(" ", "T"), "iso")))
    for coll in (l8, s2, s1):
        cat.add_child(coll)
    cat.normalize_hrefs(str(root))
    cat.make_all_asset_hrefs_relative()
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


@dataclass
class Served:
    """What the server saw: one entry per request."""

    requests: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def tif(self) -> list[dict]:
        """Requests for image files."""
        return [r for r in self.requests if r["path"].endswith(".tif")]


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with HTTP Range (single and multiple) and an optional mini STAC API."""

    protocol_version = "HTTP/1.1"

    def __init__(self, *args, served: Served, api: dict | None, **kw):
        self.served, self.api = served, api
        super().__init__(*args, **kw)

    def log_message(self, *args) -> None:  # quiet
        pass

    def _record(self, status: int, nbytes: int) -> None:
        with self.served.lock:
            self.served.requests.append(
                {
                    "method": self.command,
                    "path": urllib.parse.urlparse(self.path).path,
                    "range": self.headers.get("Range"),
                    "status": status,
                    "bytes": nbytes,
                }
            )

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._record(status, 0 if self.command == "HEAD" else len(body))

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length", 0))
        params = json.loads(self.rfile.read(n) or b"{}")
        self._api_search(params)

    def do_GET(self) -> None:
        url = urllib.parse.urlparse(self.path)
        if self.api is not None and url.path in ("/", "/api", "/conformance", "/search"):
            if url.path == "/search":
                q = urllib.parse.parse_qs(url.query)
                params = {k: v[0] for k, v in q.items()}
                for key in ("collections", "bbox"):
                    if key in params:
                        params[key] = params[key].split(",")
                if "query" in params:
                    params["query"] = json.loads(params["query"])
                return self._api_search(params)
            return self._send(200, json.dumps(self.api["landing"]).encode(), "application/json")
        path = Path(self.translate_path(url.path))
        if not path.is_file():
            return self._send(404, b"not found", "text/plain")
        data = path.read_bytes()
        rng = self.headers.get("Range")
        if not rng:
            return self._send(200, data, "application/octet-stream")
        spans = []
        for part in rng.replace("bytes=", "").split(","):
            a, _, b = part.strip().partition("-")
            start = int(a) if a else len(data) - int(b)
            end = min(int(b), len(data) - 1) if a and b else len(data) - 1
            spans.append((start, end))
        if len(spans) == 1:
            s, e = spans[0]
            return self._send(
                206,
                data[s : e + 1],
                "application/octet-stream",
                {"Content-Range": f"bytes {s}-{e}/{len(data)}"},
            )
        boundary = "earthvec-test-boundary"
        body = b""
        for s, e in spans:
            body += (
                (
                    f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                    f"Content-Range: bytes {s}-{e}/{len(data)}\r\n\r\n"
                ).encode()
                + data[s : e + 1]
                + b"\r\n"
            )
        body += f"--{boundary}--\r\n".encode()
        self._send(206, body, f"multipart/byteranges; boundary={boundary}")

    def _api_search(self, params: dict) -> None:
        feats = self.api["items"]  # type: ignore[index]
        if cols := params.get("collections"):
            feats = [f for f in feats if f["collection"] in cols]
        if box := params.get("bbox"):
            w, s, e, n = (float(v) for v in box)
            feats = [
                f
                for f in feats
                if not (f["bbox"][2] < w or f["bbox"][0] > e or f["bbox"][3] < s or f["bbox"][1] > n)
            ]
        if dt := params.get("datetime"):
            window = parse_datetime_window(dt)
            feats = [
                f
                for f in feats
                if in_window(parse_time(f["properties"]["datetime"].replace("Z", "+00:00"), "iso"), window)
            ]
        for prop, ops in (params.get("query") or {}).items():
            feats = [
                f
                for f in feats
                if prop in f["properties"] and f["properties"][prop] <= ops.get("lte", float("inf"))
            ]
        body = {"type": "FeatureCollection", "features": feats, "links": []}
        self._send(200, json.dumps(body).encode(), "application/geo+json")


def api_documents(catalog: Path, base: str) -> dict:
    """Landing page and item documents (absolute asset hrefs under ``base``) of a mini STAC API."""
    cat = pystac.Catalog.from_file(str(catalog))
    items = []
    for item in cat.get_items(recursive=True):
        d = item.to_dict(include_self_link=False)
        d["links"] = []
        for key, a in d["assets"].items():
            rel = Path(item.assets[key].get_absolute_href()).relative_to(catalog.parent)
            a["href"] = f"{base}/{rel.as_posix()}"
        items.append(d)
    landing = {
        "type": "Catalog", "id": "earthvec-test-api", "stac_version": "1.0.0",
        "description": "tiny local STAC API",
        "conformsTo": [
            "https://api.stacspec.org/v1.0.0/core",
            "https://api.stacspec.org/v1.0.0/item-search",
            "https://api.stacspec.org/v1.0.0/item-search#query",
        ],
        "links": [
            {"rel": "self", "href": base + "/", "type": "application/json"},
            {"rel": "root", "href": base + "/", "type": "application/json"},
            {"rel": "search", "href": base + "/search", "type": "application/geo+json", "method": "GET"},
            {"rel": "search", "href": base + "/search", "type": "application/geo+json", "method": "POST"},
        ],
    }  # fmt: skip
    return {"landing": landing, "items": items}


class Server:
    """``with Server(folder) as s:`` serves ``folder`` on 127.0.0.1 (``s.url``, ``s.served``)."""

    def __init__(self, folder: Path, api_catalog: Path | None = None) -> None:
        self.folder, self.api_catalog, self.served = folder, api_catalog, Served()

    def __enter__(self) -> Server:
        self.api: dict | None = None
        handler = partial(RangeHandler, served=self.served, api=None, directory=str(self.folder))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        if self.api_catalog is not None:
            api = api_documents(self.api_catalog, self.url)
            self.httpd.RequestHandlerClass = partial(  # type: ignore[assignment]
                RangeHandler, served=self.served, api=api, directory=str(self.folder)
            )
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
