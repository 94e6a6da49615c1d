"""Image loading whose failures name the offending file."""
from mmcv.transforms import LoadImageFromFile
from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` with errors that say which image failed.

    Decoding an empty, truncated or non-image file fails inside OpenCV with
    a message that does not name the file; here every failure is re-raised
    naming it. Grayscale, CMYK, palette and RGBA images are converted to
    three colour channels by the decoder, as before. A result that already
    holds a decoded ``img`` and no path passes through. Takes the same
    arguments as ``LoadImageFromFile``.
    """

    def transform(self, results: dict) -> dict:
        if 'img_path' not in results and 'img' in results:
            return results  # decoded already (e.g. mmpretrain's inferencer)
        path = results['img_path']
        try:
            return super().transform(results)
        except FileNotFoundError:
            raise FileNotFoundError(
                f'Image file {path} does not exist, but the annotations '
                'list it. Check data_root / data_prefix, or restore the '
                'file.') from None
        except Exception as err:
            raise ValueError(
                f'Cannot decode image file {path} ({type(err).__name__}: '
                f'{str(err).strip()}). It is empty, truncated or not an '
                'image: replace it, or remove it from the annotations.'
            ) from err
