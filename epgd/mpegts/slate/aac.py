"""
Silent AAC-LC, stereo, 48 kHz: one constant frame with its ADTS header, sent 46.875 times a
second (1024 samples a frame). References are ISO/IEC 14496-3:2019 subpart 4 (the raw data
block) and 1.A.2.2 (ADTS).

A frame whose two channels have ``max_sfb`` 0 codes no spectral lines at all: the decoder
reconstructs zeros, whatever the global gain. No encoder, no state, 14 bytes.
"""

from __future__ import annotations

from epgd.mpegts.slate.bits import BitWriter

SAMPLE_RATE = 48000
SAMPLES_PER_FRAME = 1024
CHANNELS = 2
#: sampling_frequency_index of 48 kHz (Table 1.18)
_FREQUENCY_INDEX = 3
#: audioObjectType 2 (AAC LC); ADTS carries it as profile_ObjectType = type - 1
_OBJECT_TYPE_LC = 2
# syntactic element ids (Table 4.85)
_ID_CPE, _ID_END = 1, 7


def _silent_ics(w: BitWriter) -> None:
    """individual_channel_stream (Table 4.44) of a silent long window, with its own ics_info."""
    w.u(8, 100)  # global_gain: any value; no scale factor or spectral line follows
    # ics_info (Table 4.6)
    w.u(1, 0)  # ics_reserved_bit
    w.u(2, 0)  # window_sequence ONLY_LONG_SEQUENCE
    w.u(1, 0)  # window_shape: sine
    w.u(6, 0)  # max_sfb 0: no scale factor bands, so section_data, scale_factor_data and
    w.u(1, 0)  # predictor_data_present     spectral_data are empty
    w.u(1, 0)  # pulse_data_present
    w.u(1, 0)  # tns_data_present
    w.u(1, 0)  # gain_control_data_present


def raw_data_block() -> bytes:
    """raw_data_block (Table 4.3): one channel_pair_element (Table 4.5) of two silent channels, then ID_END."""
    w = BitWriter()
    w.u(3, _ID_CPE)
    w.u(4, 0)  # element_instance_tag
    w.u(1, 0)  # common_window 0: each channel carries its own ics_info
    _silent_ics(w)
    _silent_ics(w)
    w.u(3, _ID_END)
    w.align_zero()  # byte_alignment()
    return w.getvalue()


def adts_header(payload_length: int) -> bytes:
    """adts_fixed_header + adts_variable_header (1.A.2.2.1), no CRC, one raw data block."""
    w = BitWriter()
    w.u(12, 0xFFF)  # syncword
    w.u(1, 0)  # ID 0: MPEG-4
    w.u(2, 0)  # layer
    w.u(1, 1)  # protection_absent: no CRC
    w.u(2, _OBJECT_TYPE_LC - 1)  # profile_ObjectType
    w.u(4, _FREQUENCY_INDEX)  # sampling_frequency_index
    w.u(1, 0)  # private_bit
    w.u(3, CHANNELS)  # channel_configuration 2: stereo (one CPE)
    w.u(1, 0)  # original_copy
    w.u(1, 0)  # home
    w.u(1, 0)  # copyright_identification_bit
    w.u(1, 0)  # copyright_identification_start
    w.u(13, 7 + payload_length)  # aac_frame_length, header included
    w.u(11, 0x7FF)  # adts_buffer_fullness 0x7FF: variable rate
    w.u(2, 0)  # number_of_raw_data_blocks_in_frame - 1
    return w.getvalue()


def silent_frame() -> bytes:
    """One ADTS frame of 1024 silent stereo samples."""
    block = raw_data_block()
    return adts_header(len(block)) + block


SILENT_FRAME = silent_frame()
