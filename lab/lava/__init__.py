"""lava"""
