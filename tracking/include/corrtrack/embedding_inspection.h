// Pictures of an image method's embedding (`corrtrack inspect embeddings`): a retrieval grid of
// test images and their nearest training images, and a 2-D projection of the test set coloured
// by class. The neighbours are the kNN evaluation's (knn_neighbours, contrastive.h).
//
//   EmbeddingInspection in{train, test};          // ImageDataset (video.h)
//   in.checkpoint = "runs/simclr/last.ckpt";
//   nlohmann::json report = embeddings_inspect(in, "out/");
#pragma once

#include "corrtrack/image_encoder.h"
#include "corrtrack/video.h"

#include <nlohmann/json.hpp>

#include <string>

namespace corrtrack {

struct EmbeddingInspection {
  ImageDataset train, test;
  std::string checkpoint;              // an image method's checkpoint; empty: `features`
  std::string features = "pixels";     // without a checkpoint: pixels | random
  ImageEncoderConfig random_encoder;   // of features "random"
  int queries = 10;                    // retrieval rows: the first test image of each class, then the next ones
  int neighbours = 8;                  // retrieval columns after the query
  int projected = 2000;                // test images in the projection (the first ones)
  int cell = 72;                       // retrieval thumbnail side, pixels
};

// Writes OUT/retrieval.png (a query per row, then its nearest training images best first; a
// neighbour of another class is framed red, of the query's class green), OUT/projection.png and
// .svg (PCA of the L2-normalised test features; t-SNE/UMAP are not available from Debian as C++
// libraries) and OUT/embeddings.json (kNN top-1 with k = 20 and the neighbours of every row).
// Returns that JSON.
nlohmann::json embeddings_inspect(const EmbeddingInspection& in, const std::string& out_dir);

}  // namespace corrtrack
