"""
An H.264 elementary stream for a still picture, written without an encoder (ITU-T H.264
(08/2021); clause numbers below are that edition's).

* The IDR codes each macroblock that carries text as **I_PCM** (7.3.5: raw 8-bit samples,
  allowed in every profile, decoded bit-exactly by every decoder) and each macroblock of flat
  background as **I_16x16, DC prediction, no residual** (8.3.3.3: the mean of the neighbours,
  which are background, is the background) — about a byte a macroblock. Macroblock 0 is
  I_PCM so that DC prediction has the background to copy (with no neighbours it would predict
  128), and a background macroblock whose left or upper neighbour has text on the shared edge
  is I_PCM too, since DC prediction would copy that text's colour. Deblocking is off, so the
  decoded picture equals the planes sample for sample.
* A P frame is one slice whose data is a single ``mb_skip_run`` over the picture (7.3.4):
  every macroblock P_Skip, motion vector 0 (8.4.1.1: no neighbour has a vector), so it copies
  the previous frame — a dozen bytes.
* Constrained Baseline, CAVLC, ``pic_order_cnt_type`` 2 (output order = decoding order, no
  reordering; needs every frame a reference, so P frames have ``nal_ref_idc`` 2 and count
  ``frame_num`` modulo 16), one reference frame, VUI with 25 fps timing and the colour
  description of ``picture``.
"""

from __future__ import annotations

from attrs import frozen

from epgd.mpegts.slate.bits import BitWriter, escape
from epgd.mpegts.slate.picture import Picture

START_CODE = b"\x00\x00\x00\x01"
FPS = 25
#: log2_max_frame_num_minus4 = 0: frame_num counts modulo 16, so there are 16 P frames to cache
LOG2_MAX_FRAME_NUM = 4
MAX_FRAME_NUM = 1 << LOG2_MAX_FRAME_NUM

# nal_unit_type, Table 7-1
NAL_SLICE, NAL_IDR, NAL_SPS, NAL_PPS, NAL_AUD = 1, 5, 7, 8, 9
# mb_type in I slices, Table 7-11: I_16x16_2_0_0 (Intra16x16PredMode 2 = DC, no chroma or luma
# coefficients) and I_PCM
MB_I16X16_DC = 3
MB_I_PCM = 25
# slice_type, Table 7-6: 5 = P and 7 = I with "every slice of the picture is of this type"
SLICE_P, SLICE_I = 5, 7
PROFILE_BASELINE = 66
#: Table A-1: (level_idc, MaxMBPS, MaxFS, MinCR) of the levels a slate may need
_LEVELS = ((20, 11880, 396, 2), (30, 40500, 1620, 2), (31, 108000, 3600, 4), (32, 216000, 5120, 4),
           (40, 245760, 8192, 4), (41, 245760, 8192, 2), (42, 522240, 8704, 2))


def nal(ref_idc: int, unit_type: int, rbsp: bytes) -> bytes:
    """
    One NAL unit in Annex B byte-stream form: a 4-byte start code (B.1.1, zero_byte included,
    which the first NAL of an access unit needs and the rest may have), the header
    (forbidden_zero_bit, nal_ref_idc, nal_unit_type; 7.3.1) and the escaped RBSP (7.4.1).
    """
    return START_CODE + bytes([ref_idc << 5 | unit_type]) + escape(rbsp)


def level_for(mbs: int, au_bytes: int = 0) -> int | None:
    """
    The lowest level_idc (Table A-1) for 25 frames/s of ``mbs`` macroblocks (MaxFS, MaxMBPS)
    whose size limit on a coded picture holds an access unit of ``au_bytes``: A.3.1 items a
    and b allow 384 * PicSizeInMbs / MinCR bytes for the first picture (conservatively
    without the initial CPB delay's allowance) and 384 * MaxMBPS / 25 / MinCR for later
    ones, which at 25 fps is never the tighter. So a slate's IDR may be at most half the raw
    picture (MinCR 2); levels with MinCR 4 (3.1-4.0) take a quarter. None when no level does.
    """
    for level, max_mbps, max_fs, min_cr in _LEVELS:
        if mbs <= max_fs and mbs * FPS <= max_mbps and au_bytes * min_cr <= 384 * mbs:
            return level
    return None


@frozen
class Geometry:
    """Frame size in pixels and macroblocks, as the SPS states it."""

    width: int
    height: int

    @property
    def mb_width(self) -> int:
        return (self.width + 15) // 16

    @property
    def mb_height(self) -> int:
        return (self.height + 15) // 16

    @property
    def mbs(self) -> int:
        """PicSizeInMbs."""
        return self.mb_width * self.mb_height


def sps(geometry: Geometry, level: int) -> bytes:
    """The sequence parameter set RBSP (7.3.2.1.1) with its VUI (E.1.1); ``level``: ``level_for``'s."""
    w = BitWriter()
    w.u(8, PROFILE_BASELINE)  # profile_idc
    # constraint_set0_flag and constraint_set1_flag: Constrained Baseline (A.2.1.1), which
    # every H.264 decoder (Main and High ones too) must decode; set2-5 and reserved_zero_2bits 0
    w.u(8, 0b1100_0000)
    w.u(8, level)  # level_idc
    w.ue(0)  # seq_parameter_set_id
    w.ue(LOG2_MAX_FRAME_NUM - 4)  # log2_max_frame_num_minus4
    w.ue(2)  # pic_order_cnt_type 2: POC from frame_num (8.2.1.3), nothing in the slice header
    w.ue(1)  # max_num_ref_frames: a P frame copies only the frame before it
    w.flag(False)  # gaps_in_frame_num_value_allowed_flag
    w.ue(geometry.mb_width - 1)  # pic_width_in_mbs_minus1
    w.ue(geometry.mb_height - 1)  # pic_height_in_map_units_minus1
    w.flag(True)  # frame_mbs_only_flag: progressive frames only
    w.flag(True)  # direct_8x8_inference_flag: no B slices here; 1 is what levels >= 3 expect of Main (A.3.3)
    crop_right = geometry.mb_width * 16 - geometry.width
    crop_bottom = geometry.mb_height * 16 - geometry.height
    w.flag(bool(crop_right or crop_bottom))  # frame_cropping_flag
    if crop_right or crop_bottom:
        # offsets count CropUnitX = 2, CropUnitY = 2 for 4:2:0 frames (7.4.2.1.1, eq. 7-19/7-20):
        # 1080 lines are coded as 1088 and cropped by 8
        w.ue(0)  # frame_crop_left_offset
        w.ue(crop_right // 2)  # frame_crop_right_offset
        w.ue(0)  # frame_crop_top_offset
        w.ue(crop_bottom // 2)  # frame_crop_bottom_offset
    w.flag(True)  # vui_parameters_present_flag
    _vui(w)
    w.trailing()
    return w.getvalue()


def _vui(w: BitWriter) -> None:
    """VUI parameters (E.1.1): square pixels, BT.709 video range, 25 fps, no reordering."""
    w.flag(True)  # aspect_ratio_info_present_flag
    w.u(8, 1)  # aspect_ratio_idc 1: 1:1 (Table E-1)
    w.flag(False)  # overscan_info_present_flag
    w.flag(True)  # video_signal_type_present_flag
    w.u(3, 5)  # video_format 5: unspecified (Table E-2)
    w.flag(False)  # video_full_range_flag 0: video range, Y' 16-235, Cb/Cr 16-240 (E.2.1)
    w.flag(True)  # colour_description_present_flag
    w.u(8, 1)  # colour_primaries: BT.709 (Table E-3)
    w.u(8, 1)  # transfer_characteristics: BT.709 (Table E-4)
    w.u(8, 1)  # matrix_coefficients: BT.709 (Table E-5), the matrix picture.py converts with
    w.flag(True)  # chroma_loc_info_present_flag
    w.ue(1)  # chroma_sample_loc_type_top_field 1: chroma midway between luma (Figure E-1),
    w.ue(1)  # chroma_sample_loc_type_bottom_field   where a 2x2 box average puts it
    w.flag(True)  # timing_info_present_flag
    w.u(32, 1)  # num_units_in_tick
    w.u(32, 2 * FPS)  # time_scale: a frame is two ticks (E.2.1, eq. E-8), so 25 frames/s
    w.flag(True)  # fixed_frame_rate_flag
    w.flag(False)  # nal_hrd_parameters_present_flag
    w.flag(False)  # vcl_hrd_parameters_present_flag
    w.flag(False)  # pic_struct_present_flag
    w.flag(True)  # bitstream_restriction_flag: lets a decoder output each frame at once
    w.flag(True)  # motion_vectors_over_pic_boundaries_flag
    w.ue(0)  # max_bytes_per_pic_denom: no limit
    w.ue(0)  # max_bits_per_mb_denom: no limit
    w.ue(16)  # log2_max_mv_length_horizontal (the default)
    w.ue(16)  # log2_max_mv_length_vertical
    w.ue(0)  # max_num_reorder_frames: output order is decoding order
    w.ue(1)  # max_dec_frame_buffering: one reference frame


def pps() -> bytes:
    """The picture parameter set RBSP (7.3.2.2)."""
    w = BitWriter()
    w.ue(0)  # pic_parameter_set_id
    w.ue(0)  # seq_parameter_set_id
    w.flag(False)  # entropy_coding_mode_flag 0: CAVLC
    w.flag(False)  # bottom_field_pic_order_in_frame_present_flag
    w.ue(0)  # num_slice_groups_minus1
    w.ue(0)  # num_ref_idx_l0_default_active_minus1: one reference
    w.ue(0)  # num_ref_idx_l1_default_active_minus1
    w.flag(False)  # weighted_pred_flag
    w.u(2, 0)  # weighted_bipred_idc
    w.se(0)  # pic_init_qp_minus26 (no macroblock has coefficients: QP changes nothing)
    w.se(0)  # pic_init_qs_minus26
    w.se(0)  # chroma_qp_index_offset
    w.flag(True)  # deblocking_filter_control_present_flag: so slices can turn the filter off
    w.flag(False)  # constrained_intra_pred_flag
    w.flag(False)  # redundant_pic_cnt_present_flag
    w.trailing()
    return w.getvalue()


def aud(idr: bool) -> bytes:
    """An access unit delimiter NAL (7.3.2.4): primary_pic_type 0 (I slices) or 1 (I and P)."""
    w = BitWriter()
    w.u(3, 0 if idr else 1)
    w.trailing()
    return nal(0, NAL_AUD, w.getvalue())


def _slice_header(w: BitWriter, idr: bool, frame_num: int) -> None:
    """slice_header() (7.3.3) for the one slice of a frame."""
    w.ue(0)  # first_mb_in_slice
    w.ue(SLICE_I if idr else SLICE_P)  # slice_type
    w.ue(0)  # pic_parameter_set_id
    w.u(LOG2_MAX_FRAME_NUM, frame_num)  # frame_num
    if idr:
        # idr_pic_id: two IDRs in a row would need different ids (7.4.3); the source never
        # sends two in a row, so 0 always
        w.ue(0)
    else:
        w.flag(False)  # num_ref_idx_active_override_flag
        w.flag(False)  # ref_pic_list_modification_flag_l0 (7.3.3.1)
    # dec_ref_pic_marking() (7.3.3.3), present since nal_ref_idc != 0
    if idr:
        w.flag(False)  # no_output_of_prior_pics_flag
        w.flag(False)  # long_term_reference_flag
    else:
        w.flag(False)  # adaptive_ref_pic_marking_mode_flag: sliding window
    w.se(0)  # slice_qp_delta
    w.ue(1)  # disable_deblocking_filter_idc 1: off, so the picture decodes exactly as coded


def pcm_map(picture: Picture) -> list[bool]:
    """
    For each macroblock in raster order: True where it must be I_PCM — it holds anything but
    background (in any plane), it is macroblock 0, or the neighbour its DC prediction reads
    (the column left of it, the row above it; 8.3.3.3, 8.3.4.1-3) is not all background there.
    A background block made I_PCM has background edges, so the rule needs one pass.
    """
    mbw, mbh = picture.mb_width, picture.mb_height
    stride, cstride = mbw * 16, mbw * 8
    bg_y, bg_cb, bg_cr = picture.background
    y_marks = bytes(0 if v == bg_y else 1 for v in range(256))
    cb_marks = bytes(0 if v == bg_cb else 1 for v in range(256))
    cr_marks = bytes(0 if v == bg_cr else 1 for v in range(256))
    y, cb, cr = picture.y, picture.cb, picture.cr
    busy: list[bool] = []  # anything but background
    right: list[bool] = []  # not background in the rightmost column
    bottom: list[bool] = []  # not background in the bottom row
    for row in range(mbh):
        # one byte per column: 1 where any of the macroblock row's lines differs from the
        # background (lines OR-ed as big ints: C speed, not a loop per sample)
        luma = 0
        for line in range(row * 16, row * 16 + 16):
            luma |= int.from_bytes(y[line * stride:(line + 1) * stride].translate(y_marks), "big")
        last_luma = y[(row * 16 + 15) * stride:(row * 16 + 16) * stride].translate(y_marks)
        chroma = 0
        for line in range(row * 8, row * 8 + 8):
            chroma |= int.from_bytes(cb[line * cstride:(line + 1) * cstride].translate(cb_marks), "big")
            chroma |= int.from_bytes(cr[line * cstride:(line + 1) * cstride].translate(cr_marks), "big")
        end = (row * 8 + 8) * cstride
        last_chroma = (int.from_bytes(cb[end - cstride:end].translate(cb_marks), "big")
                       | int.from_bytes(cr[end - cstride:end].translate(cr_marks), "big")).to_bytes(cstride, "big")
        columns = luma.to_bytes(stride, "big")
        ccolumns = chroma.to_bytes(cstride, "big")
        for col in range(mbw):
            x, cx = col * 16, col * 8
            busy.append(columns.find(1, x, x + 16) >= 0 or ccolumns.find(1, cx, cx + 8) >= 0)
            right.append(bool(columns[x + 15] or ccolumns[cx + 7]))
            bottom.append(last_luma.find(1, x, x + 16) >= 0 or last_chroma.find(1, cx, cx + 8) >= 0)
    pcm = []
    for index in range(mbw * mbh):
        col = index % mbw
        pcm.append(busy[index] or index == 0
                   or (col > 0 and right[index - 1])
                   or (index >= mbw and bottom[index - mbw]))
    return pcm


def _pcm_samples(picture: Picture, index: int) -> bytes:
    """pcm_sample_luma[256] then pcm_sample_chroma[128] (Cb then Cr), each in raster order (7.3.5, 7.4.5)."""
    mbw = picture.mb_width
    stride, cstride = mbw * 16, mbw * 8
    row, col = divmod(index, mbw)
    at = row * 16 * stride + col * 16
    cat = row * 8 * cstride + col * 8
    y, cb, cr = picture.y, picture.cb, picture.cr
    return b"".join(
        [y[at + k * stride:at + k * stride + 16] for k in range(16)]
        + [cb[cat + k * cstride:cat + k * cstride + 8] for k in range(8)]
        + [cr[cat + k * cstride:cat + k * cstride + 8] for k in range(8)])


# An I_16x16 DC macroblock with no residual (7.3.5): mb_type ue(3) "00100",
# intra_chroma_pred_mode ue(0) "1" (DC, Table 7-16), mb_qp_delta se(0) "1", then the
# Intra16x16DCLevel block's coeff_token for TotalCoeff 0, TrailingOnes 0 (7.3.5.3.2, Table 9-5),
# whose code depends on nC (9.2.1): "1" for 0 <= nC < 2, "000011" for nC >= 8. nC is the mean of
# the left and upper blocks' coefficient counts: an I_PCM neighbour counts 16, an I_16x16 one
# with no AC coefficients 0; one neighbour missing, the other alone; none, 0. So nC is 0, 8 or 16.
_I16_NC_LOW = (0b0010011_1, 8)
_I16_NC_HIGH = (0b0010011_000011, 13)
_PCM_MB_TYPE = (0b000011010, 9)  # ue(25)


def idr_slice(picture: Picture) -> tuple[bytes, int]:
    """The IDR's slice RBSP (7.3.2.8) and how many macroblocks in it are I_PCM."""
    pcm = pcm_map(picture)
    mbw = picture.mb_width
    w = BitWriter()
    _slice_header(w, idr=True, frame_num=0)
    for index, is_pcm in enumerate(pcm):
        if is_pcm:
            w.u(_PCM_MB_TYPE[1], _PCM_MB_TYPE[0])
            w.align_zero()  # pcm_alignment_zero_bit
            w.raw(_pcm_samples(picture, index))
            continue
        col = index % mbw
        left = pcm[index - 1] if col > 0 else None
        up = pcm[index - mbw] if index >= mbw else None
        counts = [16 if n else 0 for n in (left, up) if n is not None]
        n_c = (sum(counts) + 1) >> 1 if len(counts) == 2 else sum(counts)
        value, bits = _I16_NC_HIGH if n_c >= 8 else _I16_NC_LOW
        w.u(bits, value)
    w.trailing()  # rbsp_slice_trailing_bits (7.3.2.10); CAVLC has no cabac_zero_word
    return w.getvalue(), sum(pcm)


def p_slice(geometry: Geometry, frame_num: int) -> bytes:
    """A P slice RBSP whose data skips every macroblock: one ``mb_skip_run`` (7.3.4), then the stop bit."""
    w = BitWriter()
    _slice_header(w, idr=False, frame_num=frame_num)
    w.ue(geometry.mbs)  # mb_skip_run; more_rbsp_data() is then false, the slice ends
    w.trailing()
    return w.getvalue()


@frozen
class Idr:
    """A coded IDR access unit and what it cost."""

    access_unit: bytes  # AUD, SPS, PPS, IDR slice, in Annex B form
    pcm_blocks: int
    blocks: int
    level: int | None  # level_idc, None when the IDR is too big for every level (A.3.1)


def idr_access_unit(picture: Picture) -> Idr:
    """
    The access unit that starts a slate: AUD, SPS, PPS and the IDR (7.4.1.2.3 order). The
    SPS's level is chosen once the IDR's size is known; an IDR too big for any level (over
    half the raw picture) is still written, with level 4.2, and ``Idr.level`` says None.
    """
    geometry = Geometry(picture.width, picture.height)
    rbsp, pcm_blocks = idr_slice(picture)
    delimiter, picture_set, slice_nal = aud(idr=True), nal(3, NAL_PPS, pps()), nal(3, NAL_IDR, rbsp)
    # the SPS is ~30 bytes: count it at 40 in the size the level must allow
    level = level_for(geometry.mbs, len(delimiter) + len(picture_set) + len(slice_nal) + 40)
    unit = delimiter + nal(3, NAL_SPS, sps(geometry, level or 42)) + picture_set + slice_nal
    return Idr(unit, pcm_blocks, geometry.mbs, level)


def p_access_unit(geometry: Geometry, frame_num: int) -> bytes:
    """A frame that repeats the one before: AUD and a skipped P slice."""
    return aud(idr=False) + nal(2, NAL_SLICE, p_slice(geometry, frame_num % MAX_FRAME_NUM))
