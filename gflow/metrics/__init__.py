"""Sample-quality and memorisation checks for any image model's samples."""
