"""Tests of epgd.mpegts.splice, one module per module."""
