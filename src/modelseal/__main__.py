from modelseal.cli.main import run

run()
