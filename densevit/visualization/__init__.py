"""Pictures of dense features: PCA colour maps, patch correspondences and
training curves, as pure functions returning (H, W, 3) uint8 RGB arrays,
and :class:`DenseVisualizer`, which sends them to MMEngine vis backends."""
from .correspondence_drawing import (CORRECT_COLOR, MATCH_COLOR,
                                     UNKNOWN_COLOR, WRONG_COLOR,
                                     draw_correspondence_rows,
                                     draw_correspondences, match_correctness)
from .dense_visualizer import DenseVisualizer, build_dense_visualizer
from .feature_pca import (FeaturePCA, apply_pca, feature_pca_grid,
                          feature_pca_overlay, fit_pca, pca_feature_map)
from .image_utils import as_rgb_array, resize_rgb, to_rgb_image
from .training_curves import (find_scalar_logs, load_scalars,
                              plot_training_curves, split_series)
from .two_view_prediction import predict_two_views

__all__ = [
    'FeaturePCA', 'fit_pca', 'apply_pca', 'pca_feature_map',
    'feature_pca_overlay', 'feature_pca_grid', 'draw_correspondences',
    'draw_correspondence_rows', 'match_correctness', 'CORRECT_COLOR',
    'WRONG_COLOR', 'UNKNOWN_COLOR', 'MATCH_COLOR', 'plot_training_curves',
    'load_scalars', 'find_scalar_logs', 'split_series', 'DenseVisualizer',
    'build_dense_visualizer', 'predict_two_views', 'as_rgb_array',
    'resize_rgb', 'to_rgb_image'
]
