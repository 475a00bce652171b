answer = input("token? ")  # EOF under trainer-compat: never a hang
