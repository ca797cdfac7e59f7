"""An exported run served over TensorFlow Serving's REST API."""
