"""An encoder slow enough to be killed mid-batch, identical in its vectors to the pixel one."""

import os
import time

from tests.visualsearch.encoders import PixelEncoder


class SlowPixelEncoder(PixelEncoder):
    name = "slowpixel"

    def embed(self, images):
        time.sleep(float(os.environ.get("SLOW_ENCODER_SECONDS", "0.3")))
        return super().embed(images)
