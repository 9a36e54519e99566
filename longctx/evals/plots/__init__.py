"""One file per plot kind (decay, heatmap, length, cost, trilemma); ``common`` holds the shared
look: confidence bands, direct line labels and saving in several formats. ``evals plot`` drives them."""
