import io
import logging

import numpy as np
import pytest
from mmengine.logging import MMLogger
from PIL import Image


def jpeg_bytes(seed=0, size=(24, 32)):
    rng = np.random.default_rng(seed)
    img = (rng.random((*size, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, 'JPEG')
    return buf.getvalue()


@pytest.fixture
def write_broken_images():
    """Write the three kinds of unreadable file into a folder: empty, a
    truncated JPEG, and text named like an image. Returns their paths."""

    def write(folder):
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            'empty.jpg': b'',
            'truncated.jpg': jpeg_bytes()[:300],
            'notes.png': b'not an image\n' * 20,
        }
        for name, data in files.items():
            (folder / name).write_bytes(data)
        return [str(folder / name) for name in files]

    return write


@pytest.fixture
def write_good_images():
    def write(folder, n=1):
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(n):
            (folder / f'good{i}.jpg').write_bytes(jpeg_bytes(seed=i))
            paths.append(str(folder / f'good{i}.jpg'))
        return paths

    return write


@pytest.fixture
def logged_warnings():
    """The messages of warnings logged through mmengine's current logger
    (in this process) while the test runs."""
    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)
