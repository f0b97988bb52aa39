import cProfile, pstats, runpy, os
pr = cProfile.Profile(); pr.enable()
try:
    runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.py"), run_name="__main__")
finally:
    pr.disable()
    if os.environ.get("PROF_OUT"):
        pr.dump_stats(os.environ["PROF_OUT"])
