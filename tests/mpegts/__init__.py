"""Tests of epgd.mpegts, one module per module."""
