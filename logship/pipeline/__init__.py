"""The pipeline between sources and sinks: the memory budget and the ack tracker."""
