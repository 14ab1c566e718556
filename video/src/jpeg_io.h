// JPEG decoding by libjpeg(-turbo), for image_read (png_io.cpp).
#pragma once

#include "corrtrack/video.h"

#include <string>

namespace corrtrack::detail {

// True when the file starts with a JPEG's SOI marker and the start of a segment.
bool jpeg_file(const std::string& path);
// RGB image of a JPEG file; corrupt data that libjpeg works around is one logged warning naming
// the file; a fatal error throws Error naming the file.
Image jpeg_read(const std::string& path);

}  // namespace corrtrack::detail
