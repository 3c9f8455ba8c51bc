"""The learner's tools: the gradient checker (``gradcheck``, and ``tinyvae gradcheck``'s suite), the
exercises with their checker (``exercises/``, one file per exercise), and the reference answers
(``solutions``).
"""
