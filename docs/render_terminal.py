#!/usr/bin/env python3
"""Renders terminal text (stdin) to a PNG the way a dark terminal shows it, for the README's
screenshots. Block characters (the QR code's █ ▀ ▄) are drawn as exact rectangles, so the
code in the picture scans like the one on screen; other text uses DejaVu Sans Mono
(Debian's fonts-dejavu-core). Needs Pillow (pip install pillow).

Usage: wschat --qr 2>&1 | python3 docs/render_terminal.py docs/qr.png"""
import sys

from PIL import Image, ImageDraw, ImageFont

FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
FONT_SIZE_PX = 16
CELL_W_PX, CELL_H_PX = 10, 20  # a cell is twice as high as wide: ▀ and ▄ draw squares
MARGIN_PX = 16
BACKGROUND, FOREGROUND = (30, 30, 30), (220, 220, 220)


def main():
    lines = sys.stdin.read().rstrip("\n").split("\n")
    cols = max(len(line) for line in lines)
    size = (cols * CELL_W_PX + 2 * MARGIN_PX, len(lines) * CELL_H_PX + 2 * MARGIN_PX)
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT_PATH, FONT_SIZE_PX)
    half = CELL_H_PX // 2
    for row, line in enumerate(lines):
        y = MARGIN_PX + row * CELL_H_PX
        for col, char in enumerate(line):
            x = MARGIN_PX + col * CELL_W_PX
            box = {"█": (0, CELL_H_PX), "▀": (0, half), "▄": (half, CELL_H_PX)}.get(char)
            if box:
                draw.rectangle([x, y + box[0], x + CELL_W_PX - 1, y + box[1] - 1], FOREGROUND)
            elif char != " ":
                draw.text((x, y + 2), char, font=font, fill=FOREGROUND)
    image.save(sys.argv[1])


if __name__ == "__main__":
    main()
