"""Draw Hearth's mark (a flame over a hearth stone) at every size the platforms need.

Run from the repository root: `python packaging/make_icons.py`. Writes resources/icons/.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "resources" / "icons"
SIZES = [16, 24, 32, 48, 64, 128, 256, 512, 1024]


def draw(size: int) -> Image.Image:
    scale = 4  # draw large, then downsample for smooth edges
    s = size * scale
    image = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(image)
    d.rounded_rectangle([0, 0, s - 1, s - 1], radius=s * 0.22, fill=(38, 34, 46, 255))
    # flame: two overlapping teardrops
    def drop(cx: float, cy: float, w: float, h: float, color: tuple[int, int, int]) -> None:
        d.ellipse([cx - w / 2, cy - w / 2, cx + w / 2, cy + w / 2], fill=color)
        d.polygon([(cx - w / 2, cy), (cx + w / 2, cy), (cx, cy - h)], fill=color)
    drop(s * 0.5, s * 0.56, s * 0.40, s * 0.50, (243, 128, 42))
    drop(s * 0.5, s * 0.62, s * 0.22, s * 0.30, (255, 214, 102))
    # hearth stone
    d.rounded_rectangle([s * 0.2, s * 0.77, s * 0.8, s * 0.84], radius=s * 0.03,
                        fill=(200, 190, 180, 255))
    return image.resize((size, size), Image.LANCZOS)


def draw_check(size: int, color: tuple[int, int, int]) -> Image.Image:
    """The tick of a checked box in the dark theme (desktop/ui/theme.py): Fusion draws it only
    with the palette, which the dark sheet's own indicator colors replace."""
    scale = 8
    s = size * scale
    image = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(image)
    points = [(s * 0.2, s * 0.52), (s * 0.42, s * 0.74), (s * 0.8, s * 0.28)]
    d.line(points, fill=(*color, 255), width=int(s * 0.16), joint="curve")
    return image.resize((size, size), Image.LANCZOS)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    images = {size: draw(size) for size in SIZES}
    for size, image in images.items():
        image.save(OUT / f"hearth-{size}.png")
    images[256].save(OUT / "hearth.ico", sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    images[1024].save(OUT / "hearth.icns")
    draw_check(13, (32, 33, 36)).save(OUT / "check-dark.png")
    draw_check(26, (32, 33, 36)).save(OUT / "check-dark@2x.png")


if __name__ == "__main__":
    main()
