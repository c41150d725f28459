"""reelwatch: a video upload-and-processing service that never loses a video.

The package layout follows the data flow: ``api`` accepts uploads into ``storage``,
``videos.pipeline`` declares the video workflow that the ``engine`` runs on workers using
``media`` (ffmpeg), and ``cli`` starts every role.
"""

__version__ = "0.1.0"
