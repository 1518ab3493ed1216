#!/usr/bin/env python3
"""Write data/imagenet_classes.txt, once, from torchvision's ResNet-50 weights metadata.

    python tools/make_labels.py          # (re)write the file
    python tools/make_labels.py --check  # exit 1 if the file differs from torchvision's names

Line i holds the name of class i. The lesson reads this file as plain text (never eval()).
"""

import sys
from pathlib import Path

from torchvision.models import ResNet50_Weights

TARGET = Path(__file__).resolve().parent.parent / "data" / "imagenet_classes.txt"


def main(argv):
    text = "\n".join(ResNet50_Weights.IMAGENET1K_V1.meta["categories"]) + "\n"
    if "--check" in argv:
        same = TARGET.read_text(encoding="utf-8") == text
        print("the label file matches torchvision" if same else "the label file differs from torchvision")
        return 0 if same else 1
    TARGET.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
