print("kmt")
