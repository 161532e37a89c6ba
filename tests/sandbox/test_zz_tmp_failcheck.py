import sys
def test_fails(operator_process):
    p = operator_process(argv=[sys.executable, "-c", "print('hello from operator')"], name="x")
    p.process.wait(10)
    assert False
