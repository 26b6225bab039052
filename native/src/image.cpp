// Image decoding and encoding through libpng and libjpeg(-turbo). Pixels cross the ABI as
// interleaved uint8 rows (height × width × channels) in buffers owned by the caller.
#include "common.h"
#include "codes.h"

#include <png.h>
#include <jpeglib.h>
#include <jerror.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <memory>

using namespace metarun;

namespace {

struct PngReader {
  const uint8_t* data;
  size_t size;
  size_t pos;
};

void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (r->pos + n > r->size) png_error(png, "unexpected end of PNG data");
  std::memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

void png_error_throw(png_structp png, png_const_charp msg) {
  // libpng requires that an error handler never returns; longjmp back to the caller's setjmp.
  auto* buf = static_cast<std::string*>(png_get_error_ptr(png));
  *buf = msg;
  png_longjmp(png, 1);
}
void png_warning_ignore(png_structp, png_const_charp) {}

// Decodes into 8-bit pixels with the requested channel count (1 gray, 3 RGB); any PNG colour
// type and bit depth is converted by libpng itself.
void decode_png(const uint8_t* data, size_t size, int want_channels, std::vector<uint8_t>& out, int& w, int& h) {
  if (size < 8 || png_sig_cmp(data, 0, 8) != 0) throw std::runtime_error("not a PNG file");
  std::string err;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_error_throw, png_warning_ignore);
  if (!png) throw std::runtime_error("libpng: out of memory");
  png_infop info = png_create_info_struct(png);
  std::vector<png_bytep> rows;
  PngReader reader{data, size, 0};
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw std::runtime_error("PNG does not decode: " + err);
  }
  png_set_read_fn(png, &reader, png_read_mem);
  png_read_info(png, info);
  w = static_cast<int>(png_get_image_width(png, info));
  h = static_cast<int>(png_get_image_height(png, info));
  int color = png_get_color_type(png, info);
  int depth = png_get_bit_depth(png, info);
  if (depth == 16) png_set_strip_16(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if ((color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  // Alpha is dropped (composited on nothing): data sets use it, if at all, as a constant.
  png_set_strip_alpha(png);
  bool gray_src = (color & PNG_COLOR_MASK_COLOR) == 0;
  if (want_channels == 3 && gray_src) png_set_gray_to_rgb(png);
  if (want_channels == 1 && !gray_src) png_set_rgb_to_gray_fixed(png, 1, -1, -1);
  png_read_update_info(png, info);
  size_t rowbytes = png_get_rowbytes(png, info);
  if (rowbytes != static_cast<size_t>(w) * static_cast<size_t>(want_channels)) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw std::runtime_error("PNG converts to an unexpected row size");
  }
  out.resize(rowbytes * static_cast<size_t>(h));
  rows.resize(static_cast<size_t>(h));
  for (int y = 0; y < h; y++) rows[static_cast<size_t>(y)] = out.data() + rowbytes * static_cast<size_t>(y);
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
}

struct JpegError {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};
void jpeg_error_exit(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  longjmp(e->jump, 1);
}
// libjpeg reports data that ends early or is corrupt as a warning (level -1) and fills the lost
// part in (gray for a truncated download); an image with lost pixels is an error here. Trace
// messages (level >= 0) and harmless warnings stay silent.
void jpeg_warning_is_error(j_common_ptr cinfo, int msg_level) {
  if (msg_level != -1) return;
  switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
      jpeg_error_exit(cinfo);
      break;
    default:
      break;
  }
}

void decode_jpeg(const uint8_t* data, size_t size, int want_channels, std::vector<uint8_t>& out, int& w, int& h) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.emit_message = jpeg_warning_is_error;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    throw std::runtime_error(std::string("JPEG does not decode: ") + err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, const_cast<unsigned char*>(data), static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  // libjpeg converts YCbCr and grayscale itself but not CMYK/YCCK (print workflows' JPEGs):
  // those are read as CMYK and converted below.
  bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  cinfo.out_color_space = cmyk ? JCS_CMYK : want_channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  w = static_cast<int>(cinfo.output_width);
  h = static_cast<int>(cinfo.output_height);
  size_t stride = static_cast<size_t>(w) * static_cast<size_t>(want_channels);
  out.resize(stride * static_cast<size_t>(h));
  std::vector<uint8_t> ink(cmyk ? static_cast<size_t>(w) * 4 : 0);
  // Adobe's CMYK JPEGs store inverted ink (255 = none), which libjpeg passes through.
  bool inverted = cinfo.saw_Adobe_marker;
  while (cinfo.output_scanline < cinfo.output_height) {
    uint8_t* dst = out.data() + stride * cinfo.output_scanline;
    JSAMPROW row = cmyk ? ink.data() : dst;
    jpeg_read_scanlines(&cinfo, &row, 1);
    if (!cmyk) continue;
    for (int x = 0; x < w; x++) {
      int v[4];
      for (int i = 0; i < 4; i++) v[i] = inverted ? ink[4 * x + i] : 255 - ink[4 * x + i];
      int r = (v[0] * v[3] + 127) / 255, g = (v[1] * v[3] + 127) / 255, b = (v[2] * v[3] + 127) / 255;
      if (want_channels == 1) {
        dst[x] = static_cast<uint8_t>((299 * r + 587 * g + 114 * b + 500) / 1000);
      } else {
        dst[3 * x] = static_cast<uint8_t>(r);
        dst[3 * x + 1] = static_cast<uint8_t>(g);
        dst[3 * x + 2] = static_cast<uint8_t>(b);
      }
    }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
}

bool is_jpeg(const uint8_t* d, size_t n) { return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }

}  // namespace

// Decodes a PNG or JPEG held in memory into a uint8 tensor [channels, height, width]
// (channels 1 or 3, converting as needed).
MR_EXPORT Handle mr_image_decode(const uint8_t* data, int64_t size, int channels) {
  MR_TENSOR([&] {
    if (channels != 1 && channels != 3) throw std::invalid_argument("channels must be 1 or 3");
    std::vector<uint8_t> pixels;
    int w = 0, h = 0;
    // The format comes from the content, never the extension: a .jpg that is empty or holds
    // something else is named as what it is, not as a broken PNG.
    if (size == 0) throw std::runtime_error("empty file (0 bytes), not an image");
    if (is_jpeg(data, static_cast<size_t>(size)))
      decode_jpeg(data, static_cast<size_t>(size), channels, pixels, w, h);
    else if (size >= 8 && png_sig_cmp(data, 0, 8) == 0)
      decode_png(data, static_cast<size_t>(size), channels, pixels, w, h);
    else
      throw std::runtime_error("neither a PNG nor a JPEG (its first bytes are neither signature)");
    auto t = at::empty({h, w, channels}, at::kByte);
    std::memcpy(t.data_ptr(), pixels.data(), pixels.size());
    return t.permute({2, 0, 1}).contiguous();
  }())
}

// Encodes a uint8 tensor [channels, height, width] (1 or 3 channels) as PNG, JPEG (quality
// 1..100), an Adobe CMYK JPEG (from RGB) or a progressive JPEG. Returns the byte count; *out receives a buffer for mr_buffer_free.
MR_EXPORT int64_t mr_image_encode(Handle img, int format, int quality, uint8_t** out) {
  MR_GUARD(-1, {
    auto t = T(img);
    if (t.dim() != 3 || t.scalar_type() != at::kByte || (t.size(0) != 1 && t.size(0) != 3))
      throw std::invalid_argument("image must be a uint8 tensor [1 or 3, H, W]");
    auto hwc = t.permute({1, 2, 0}).contiguous().to(at::kCPU);
    int c = static_cast<int>(t.size(0)), h = static_cast<int>(t.size(1)), w = static_cast<int>(t.size(2));
    const uint8_t* px = hwc.data_ptr<uint8_t>();
    char* buf = nullptr;
    size_t len = 0;
    FILE* f = open_memstream(&buf, &len);
    if (!f) throw std::runtime_error("cannot open a memory stream");
    std::unique_ptr<FILE, int (*)(FILE*)> guard(f, fclose);
    if (format == IMG_PNG) {
      std::string err;
      png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_error_throw, png_warning_ignore);
      png_infop info = png_create_info_struct(png);
      if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        throw std::runtime_error("PNG encoding failed: " + err);
      }
      png_init_io(png, f);
      png_set_IHDR(png, info, static_cast<png_uint_32>(w), static_cast<png_uint_32>(h), 8,
                   c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                   PNG_FILTER_TYPE_DEFAULT);
      png_write_info(png, info);
      for (int y = 0; y < h; y++) png_write_row(png, const_cast<png_bytep>(px + static_cast<size_t>(y) * w * c));
      png_write_end(png, nullptr);
      png_destroy_write_struct(&png, &info);
    } else if (format == IMG_JPEG || format == IMG_CMYK_JPEG || format == IMG_PROGRESSIVE_JPEG) {
      jpeg_compress_struct cinfo;
      JpegError err;
      cinfo.err = jpeg_std_error(&err.mgr);
      err.mgr.error_exit = jpeg_error_exit;
      if (setjmp(err.jump)) {
        jpeg_destroy_compress(&cinfo);
        throw std::runtime_error(std::string("JPEG encoding failed: ") + err.message);
      }
      jpeg_create_compress(&cinfo);
      jpeg_stdio_dest(&cinfo, f);
      cinfo.image_width = static_cast<JDIMENSION>(w);
      cinfo.image_height = static_cast<JDIMENSION>(h);
      bool cmyk = format == IMG_CMYK_JPEG;
      if (cmyk && c != 3) throw std::invalid_argument("a CMYK JPEG is made from an RGB image");
      cinfo.input_components = cmyk ? 4 : c;
      cinfo.in_color_space = cmyk ? JCS_CMYK : c == 1 ? JCS_GRAYSCALE : JCS_RGB;
      jpeg_set_defaults(&cinfo);
      jpeg_set_quality(&cinfo, quality, TRUE);
      if (format == IMG_PROGRESSIVE_JPEG) jpeg_simple_progression(&cinfo);
      jpeg_start_compress(&cinfo, TRUE);
      std::vector<uint8_t> ink(cmyk ? static_cast<size_t>(w) * 4 : 0);
      while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = const_cast<JSAMPROW>(px + static_cast<size_t>(cinfo.next_scanline) * w * c);
        if (cmyk) {
          // Adobe's convention (what the decoder expects with its marker): inverted ink, K from the brightest channel.
          for (int x = 0; x < w; x++) {
            int r = row[3 * x], g = row[3 * x + 1], b = row[3 * x + 2];
            int m = std::max(r, std::max(g, b));
            auto plate = [m](int v) { return m == 0 ? 255 : 255 - (255 * (m - v) + m / 2) / m; };
            ink[4 * x] = static_cast<uint8_t>(plate(r));
            ink[4 * x + 1] = static_cast<uint8_t>(plate(g));
            ink[4 * x + 2] = static_cast<uint8_t>(plate(b));
            ink[4 * x + 3] = static_cast<uint8_t>(m);
          }
          row = ink.data();
        }
        jpeg_write_scanlines(&cinfo, &row, 1);
      }
      jpeg_finish_compress(&cinfo);
      jpeg_destroy_compress(&cinfo);
    } else {
      throw std::invalid_argument("unknown image format " + std::to_string(format));
    }
    guard.reset();  // flushes buf/len
    *out = reinterpret_cast<uint8_t*>(buf);
    return static_cast<int64_t>(len);
  })
}
MR_EXPORT void mr_buffer_free(uint8_t* buf) { free(buf); }
