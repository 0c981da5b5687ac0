from recfuse.testing import RecommenderConformance


class TestItemKNN(RecommenderConformance):
    model_name = "itemknn"
    params = {"k": 50}
