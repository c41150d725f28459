"""Tests of reelwatch.media against the real ffmpeg."""
