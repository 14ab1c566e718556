// JPEG decoding by libjpeg(-turbo), for image_read (png_io.cpp), and JPEG frames of clip caches.
#pragma once

#include "corrtrack/video.h"

#include <cstdint>
#include <string>
#include <vector>

namespace corrtrack::detail {

// True when the file starts with a JPEG's SOI marker and the start of a segment.
bool jpeg_file(const std::string& path);
// RGB image of a JPEG file; corrupt data that libjpeg works around is one logged warning naming
// the file; a fatal error throws Error naming the file.
Image jpeg_read(const std::string& path);
// RGB image of a JPEG held in memory; `what` names it in errors and warnings.
Image jpeg_decode_buffer(const uint8_t* data, size_t size, const std::string& what);
// A baseline JPEG of an RGB image (quality 1..100, 4:2:0 as libjpeg's defaults).
std::vector<uint8_t> jpeg_encode(const Image& rgb, int quality);

}  // namespace corrtrack::detail
