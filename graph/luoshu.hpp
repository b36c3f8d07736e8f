#pragma once
// The public C++ API in one include.

#include "graph/autodiff.hpp"
#include "graph/builder.hpp"
#include "graph/checkpoint.hpp"
#include "graph/data/csv.hpp"
#include "graph/data/dataset.hpp"
#include "graph/data/idx.hpp"
#include "graph/data/libsvm.hpp"
#include "graph/data/loader.hpp"
#include "graph/executor.hpp"
#include "graph/graph.hpp"
#include "graph/metrics.hpp"
#include "graph/models.hpp"
#include "graph/optimizer.hpp"
#include "graph/tensor.hpp"
#include "graph/variables.hpp"
#include "ops/kernel.hpp"
