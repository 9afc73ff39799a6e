"""Run the fixed textbook DCGAN loop alone; it lives in the package (ganforge.reference_dcgan)
so that `ganforge bench` compares against it from any installation.

    python benchmarks/reference_dcgan.py --resolution 32 --channels 1 --batch-size 64
"""
from ganforge.reference_dcgan import main

if __name__ == "__main__":
    main()
