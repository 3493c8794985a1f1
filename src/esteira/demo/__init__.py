"""`esteira demo`: the reference project walked through the maturity levels in a home of
its own: level 0 (the pipeline run by hand, the first champion), level 1 (batches fed month
by month through continuous training while a live service answers a bounded client and
swaps in each new champion), with a summary of what happened to each batch and a report of
it all in one HTML file (`report`, read by `report_data`; never retraining measured by
`baseline`)."""
